"""The Gradio app driven in Debian's Chromium by Playwright: upload the sample set, see the sunglasses
photo flagged, train a tiny likeness, generate a tiny pack, see the gallery with scores. Screenshots go
to ``test-artifacts/app/`` (``WORKBENCH_TEST_ARTIFACTS`` moves it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from appserver import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, SAMPLES, compare_first_runs, serve

SUBJECT = SAMPLES / "aws_rek_subject1"

# Skipped on a dev box without Chromium; under CI (which installs it) a missing browser is a failure.
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file() and not os.environ.get("CI"),
                                reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory)


@pytest.mark.slow
def test_check_train_generate_in_the_browser(server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        # Selfies: upload the sample set, check, see the sunglasses photo flagged
        page.locator("#selfie-upload input[type=file]").set_input_files(sorted(str(p) for p in SUBJECT.glob("*.jpg")))
        uploaded = page.locator("#selfie-upload").get_by_role("button", name="Remove this file")
        expect(uploaded).to_have_count(9, timeout=60_000)
        page.locator("#check-button").click()
        card = page.locator(".photo-card[data-file='08.jpg']")
        expect(card).to_contain_text("Sunglasses hide the eyes", timeout=120_000)  # plain words, not flag codes
        expect(page.locator("#verdict")).to_contain_text("Verdict")
        page.screenshot(path=str(ARTIFACTS / "1-selfies.png"), full_page=True)
        # remove the sunglasses photo and re-check: its card goes, the others stay
        page.locator("#remove-photos").get_by_label("08.jpg").check()
        page.get_by_role("button", name="Remove selected and re-check").click()
        expect(card).to_have_count(0, timeout=120_000)
        expect(page.locator(".photo-card")).to_have_count(8)
        # Train: a tiny likeness in a few steps
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-steps input").fill("4")
        page.locator("#train-button").click()
        expect(page.locator("#train-summary")).to_contain_text("is ready", timeout=240_000)
        page.screenshot(path=str(ARTIFACTS / "2-train.png"), full_page=True)
        # Packs: pick the likeness, generate one tiny pack, see the gallery with scores
        page.get_by_role("tab", name="Packs").click()
        page.locator("#refresh-likenesses").click()
        expect(page.locator("#likeness-choice input")).to_have_value("me", timeout=30_000)  # a name, not a path
        page.locator("#generate-button").click()
        expect(page.locator("#generate-status")).to_contain_text("2 images in run", timeout=240_000)
        # generate again with other settings: the run gains images, none is lost
        page.get_by_label("Steps (comma-separated)").fill("4, 6")
        page.locator("#generate-button").click()
        expect(page.locator("#generate-status")).to_contain_text("4 images in run", timeout=240_000)
        gallery = page.locator("#gallery")
        expect(gallery.locator("img").first).to_be_visible(timeout=30_000)
        gallery.locator("img").first.click()
        expect(gallery).to_contain_text("Likeness:", timeout=30_000)
        # star the picked image: the caption gains a star, the favourites zip holds it
        page.locator("#favourite-button").click()
        expect(page.locator("#generate-status")).to_contain_text("★ starred: image 1", timeout=30_000)
        expect(page.locator("#download-favourites")).to_contain_text("-favourites", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "3-packs.png"), full_page=True)
        # a run the user names is a new run; the first one keeps its four images
        page.locator("#run-name input, #run-name textarea").first.fill("best-shots")
        page.get_by_label("Steps (comma-separated)").fill("4")
        page.locator("#generate-button").click()
        expect(page.locator("#generate-status")).to_contain_text("2 images in run 'best-shots'", timeout=240_000)
        # Evaluate: score the run, see the summary table
        page.get_by_role("tab", name="Evaluate").click()
        page.locator("#refresh-runs").click()
        expect(page.locator("#run-choice input")).to_have_value("best-shots", timeout=30_000)  # newest first
        page.locator("#run-choice input").click()
        page.get_by_role("option", name=re.compile(r"^me-")).click()
        page.locator("#score-button").click()
        expect(page.locator("#score-summary")).to_contain_text("Face found", timeout=120_000)
        expect(page.locator("#score-summary")).to_contain_text("95% range")
        expect(page.locator("#evaluate-banner")).to_contain_text("random weights")  # tiny images are noise
        page.screenshot(path=str(ARTIFACTS / "4-evaluate.png"), full_page=True)
        # Compare: two runs (here the run with itself), a plain verdict, shared axes, the same prompts side by side
        compare_first_runs(page)
        expect(page.locator("#compare-verdict")).to_contain_text("likeness cannot be compared", timeout=60_000)
        expect(page.locator("#compare-plot img")).to_be_visible(timeout=60_000)
        expect(page.locator("#compare-images")).to_contain_text("B · ", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "5-compare.png"), full_page=True)
        # A long training: reload the page (the job survives and the tab reattaches), then cancel it
        page.get_by_role("tab", name="Train").click()
        page.locator("#likeness-name input, #likeness-name textarea").first.fill("slow")
        page.locator("#train-steps input").fill("5000")
        page.locator("#train-button").click()
        running = re.compile(r"Training 'slow' · running · \d+/5000 steps · loss")
        expect(page.locator("#train-status")).to_contain_text(running, timeout=120_000)
        page.reload()
        page.get_by_role("tab", name="Train").click()
        expect(page.locator("#train-status")).to_contain_text(running, timeout=30_000)  # reattached
        page.screenshot(path=str(ARTIFACTS / "6-reattached.png"), full_page=True)
        page.locator("#train-cancel").click()
        expect(page.locator("#train-status")).to_contain_text("cancelled", timeout=30_000)
        page.get_by_role("tab", name="Packs").click()
        page.locator("#refresh-likenesses").click()
        page.locator("#likeness-choice input").click()
        expect(page.get_by_role("option", name=re.compile("slow"))).to_have_count(0)  # never offered as finished
        page.keyboard.press("Escape")
        # Jobs: everything started is listed with its state; the newest (the cancelled training) is picked
        page.get_by_role("tab", name="Jobs").click()
        jobs = page.locator("#jobs-table")
        expect(jobs).to_contain_text("Training 'slow'", timeout=30_000)
        expect(jobs).to_contain_text("cancelled")
        expect(jobs).to_contain_text("Scoring run")
        expect(page.locator("#job-detail")).to_contain_text("Training 'slow' · cancelled", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "7-jobs.png"), full_page=True)
        # Delete my data: refused until confirmed, then everything of this user goes
        page.get_by_text("Delete my data").first.click()
        page.locator("#delete-sure input").check()
        page.locator("#delete-data").click()
        expect(page.locator("#delete-receipt")).to_contain_text("Nothing of yours is left", timeout=60_000)
        browser.close()


@pytest.mark.slow
def test_uploads_with_one_name_and_a_pdf_each_get_a_card(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    photos = sorted(SUBJECT.glob("*.jpg"))[:3]
    files = [{"name": "01.jpg", "mimeType": "image/jpeg", "buffer": p.read_bytes()} for p in photos]
    files.append({"name": "notes.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 not a photo"})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.locator("#selfie-upload input[type=file]").set_input_files(files)
        expect(page.locator("#selfie-upload").get_by_role("button", name="Remove this file")).to_have_count(4,
                                                                                                         timeout=60_000)
        page.locator("#check-button").click()
        expect(page.locator(".photo-card")).to_have_count(4, timeout=120_000)
        for name in ("01.jpg", "01 (2).jpg", "01 (3).jpg"):
            expect(page.locator(f".photo-card[data-file='{name}']")).to_have_count(1)
        expect(page.locator(".photo-card[data-file='notes.pdf']")).to_contain_text("not a supported photo")
        page.screenshot(path=str(ARTIFACTS / "8-uploads.png"), full_page=True)
        browser.close()


def test_app_refuses_a_public_host_without_auth(tmp_path):
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "app", "--host", "0.0.0.0"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "WORKBENCH_HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "refusing to serve on host 0.0.0.0 without --auth USER:PASS" in done.stderr
    share = subprocess.run([sys.executable, "-m", "workbench.cli", "app", "--share"], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "WORKBENCH_HOME": str(tmp_path)})
    assert share.returncode == 1 and "public share link" in share.stderr

