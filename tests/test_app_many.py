"""The app as several people use it at once, driven in Chromium: two people signed in to one server each
check, train and generate and see only their own; checking twice keeps the set; one large file is refused
alone; a cancel stops a 1000-step image; a step count over the limit is refused at the control; "Delete my
data" during a job stops it and leaves nothing on screen. Every wait is for a state on the page. Screenshots
go to ``test-artifacts/app/``."""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
from appserver import ARTIFACTS, CHROMIUM, SAMPLES, compare_first_runs, launch, serve
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.is_file() and not os.environ.get("CI"),
                                                   reason="Debian chromium is not installed (.ci/run installs it)")]
ACCOUNTS = {"ana": "one", "bea": "two", "cy": "three", "dee": "four"}
CODE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")  # a metric code or flag id: test_facesim, kid_clip_std, ...
PATH = re.compile(r"(?:/tmp|/work|/home|/root|/usr)/\S+")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    auth = [arg for user, password in ACCOUNTS.items() for arg in ("--auth", f"{user}:{password}")]
    yield from serve(tmp_path_factory, *auth, "--turn-seconds", "5", "--max-photo-mb", "0.5")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def sign_in(browser, url: str, user: str):
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(ACCOUNTS[user])
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#check-button")).to_be_visible(timeout=60_000)
    return page


def check_sample(page, name: str) -> None:
    from playwright.sync_api import expect

    page.get_by_label("…or a bundled sample set").click()
    page.get_by_role("option", name=name).click()
    page.locator("#check-button").click()
    expect(page.locator("#verdict")).to_contain_text("Verdict", timeout=180_000)


def start_training(page, name: str, steps: int) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Train").click()
    page.locator("#likeness-name input, #likeness-name textarea").first.fill(name)
    page.locator("#train-steps input").fill(str(steps))
    # the time estimate appears under the steps and moves the box below it: tick it once the line is there
    expect(page.locator("#train-estimate")).to_contain_text(re.compile(f"No time estimate yet|for {steps} steps"))
    page.locator("#train-anyway input").check()
    page.locator("#train-button").click()


def train(page, name: str, steps: int, wait_for: str = "is ready") -> None:
    from playwright.sync_api import expect

    start_training(page, name, steps)
    expect(page.locator("#train-summary" if wait_for == "is ready" else "#train-status")).to_contain_text(
        wait_for, timeout=300_000)


def generate(page, steps: str = "4", run: str = "") -> None:

    page.get_by_role("tab", name="Packs").click()
    page.locator("#refresh-likenesses").click()
    page.get_by_label("Steps (comma-separated)").fill(steps)
    page.locator("#run-name input, #run-name textarea").first.fill(run)
    page.locator("#generate-button").click()


def test_two_people_on_one_server_each_see_only_their_own(server, browser):
    from playwright.sync_api import expect

    ana, bea = sign_in(browser, server, "ana"), sign_in(browser, server, "bea")
    photos = sorted(str(p) for p in (SAMPLES / "aws_rek_subject1").glob("*.jpg"))
    ana.locator("#selfie-upload input[type=file]").set_input_files(photos)
    expect(ana.locator("#selfie-upload").get_by_role("button", name="Remove this file")).to_have_count(
        len(photos), timeout=60_000)
    ana.locator("#check-button").click()
    check_sample(bea, "lisa_debruine")
    expect(ana.locator(".photo-card")).to_have_count(len(photos), timeout=180_000)
    # both train at once; the runner takes them in turns and both finish
    for page, name in ((ana, "ana-face"), (bea, "bea-face")):
        start_training(page, name, 4)
    for page in (ana, bea):
        expect(page.locator("#train-summary")).to_contain_text("is ready", timeout=300_000)
    for page, name in ((ana, "ana-face"), (bea, "bea-face")):
        generate(page)
        expect(page.locator("#generate-status")).to_contain_text("2 images in run", timeout=300_000)
        expect(page.locator("#packs-banner")).to_contain_text("random weights")  # tiny images are noise
        page.locator("#likeness-choice input").click()
        expect(page.get_by_role("option")).to_have_text([re.compile(name)])  # only their own likeness
        page.keyboard.press("Escape")
    ana.screenshot(path=str(ARTIFACTS / "many-1-ana-packs.png"), full_page=True)
    bea.screenshot(path=str(ARTIFACTS / "many-2-bea-packs.png"), full_page=True)
    # each sees only their own jobs
    bea.get_by_role("tab", name="Jobs").click()
    expect(bea.locator("#jobs-table")).to_contain_text("bea-face", timeout=30_000)
    expect(bea.locator("#jobs-table")).not_to_contain_text("ana-face")
    # the tabs product staff read speak no code, path or flag: Evaluate, Train, Compare
    ana.get_by_role("tab", name="Evaluate").click()
    ana.locator("#score-button").click()
    expect(ana.locator("#score-summary")).to_contain_text("Face found", timeout=180_000)
    expect(ana.locator("#score-headline")).to_contain_text("A face was found in")
    ana.screenshot(path=str(ARTIFACTS / "many-3-evaluate.png"), full_page=True)
    texts = [ana.locator("body").inner_text()]
    compare_first_runs(ana)
    expect(ana.locator("#compare-verdict")).to_contain_text("likeness cannot be compared", timeout=60_000)
    expect(ana.locator("#compare-banner")).to_contain_text("random weights")
    texts.append(ana.locator("body").inner_text())
    ana.get_by_role("tab", name="Train").click()
    texts.append(ana.locator("body").inner_text())
    for text in texts:
        from workbench import METRICS

        assert not [m for m in METRICS if m in text], "a metric code on the page"
        assert not PATH.search(text), f"a server path on the page: {PATH.search(text).group()}"
        assert not re.search(r"(?<![\w-])--[a-z]", text), "a CLI flag on the page"
        assert "Use via API" not in text
        assert not [c for c in CODE.findall(text) if c not in {"dpmpp_2m", "dpmpp_2m_karras", "euler_a",
                                                                "flow_euler", "tiny_sd"}], CODE.findall(text)


def big_photo() -> bytes:
    """A 1 MB photo (noise compresses badly): over the server's 0.5 MB limit."""
    pixels = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=100)
    assert buffer.tell() > 2**20 // 2
    return buffer.getvalue()


def test_checking_twice_keeps_the_set_and_a_large_file_is_refused_alone(server, browser):
    from playwright.sync_api import expect

    page = sign_in(browser, server, "cy")
    photos = sorted((SAMPLES / "aws_rek_subject1").glob("*.jpg"))[:3]
    files = [{"name": p.name, "mimeType": "image/jpeg", "buffer": p.read_bytes()} for p in photos]
    files.append({"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": big_photo()})
    page.locator("#selfie-upload input[type=file]").set_input_files(files)
    expect(page.locator("#selfie-upload").get_by_role("button", name="Remove this file")).to_have_count(4,
                                                                                                     timeout=60_000)
    page.locator("#check-button").click()
    expect(page.locator(".photo-card")).to_have_count(3, timeout=180_000)
    expect(page.locator("#verdict")).to_contain_text("Not used: huge.jpg")
    expect(page.locator("#verdict")).to_contain_text("larger than the 0.5 MB a photo may be")
    expect(page.locator("#verdict")).to_contain_text("0 of 3 photos usable" if False else "of 3 photos usable")
    page.screenshot(path=str(ARTIFACTS / "many-4-large-file.png"), full_page=True)
    # check again with the same uploads (their temporary copies are gone): the set is kept, not emptied
    page.locator("#check-button").click()
    expect(page.locator("#verdict")).to_contain_text("Not used: huge.jpg", timeout=180_000)
    expect(page.locator(".photo-card")).to_have_count(3)
    expect(page.locator(".toast-body")).to_have_count(0)  # no error popup
    # and the set trains: the files are where training reads them
    train(page, "cy-face", 2)


def test_cancel_stops_a_1000_step_image_and_limits_are_refused_at_the_control(server, browser):
    from playwright.sync_api import expect

    page = sign_in(browser, server, "dee")
    check_sample(page, "lisa_debruine")
    train(page, "dee-face", 2)
    page.get_by_role("tab", name="Packs").click()
    page.locator("#refresh-likenesses").click()
    page.get_by_label("Steps (comma-separated)").fill("100000")
    expect(page.locator("#generate-estimate")).to_contain_text("outside 1-1000", timeout=30_000)  # at the control
    page.locator("#generate-button").click()
    # and at the click, in the same words
    expect(page.locator(".toast-body")).to_contain_text("Steps 100000 is outside 1-1000", timeout=30_000)
    expect(page.locator("#generate-status")).not_to_contain_text("queued")
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)  # the page stays as it was, no output marked
    page.screenshot(path=str(ARTIFACTS / "many-5-limit.png"), full_page=True)
    generate(page, steps="1000", run="long")
    expect(page.locator("#generate-status")).to_contain_text("running", timeout=120_000)
    page.locator("#generate-cancel").click()
    # the image is 1000 steps long; the cancel lands within a step of it, not after the image
    expect(page.locator("#generate-status")).to_contain_text("cancelled", timeout=10_000)
    expect(page.locator("#generate-status")).to_contain_text("no image was finished")
    page.screenshot(path=str(ARTIFACTS / "many-6-cancelled.png"), full_page=True)
    # Delete my data during a long training: the job is stopped first, nothing of the person stays on screen
    train(page, "slow", 5000, wait_for="running")
    page.get_by_text("Delete my data").first.click()
    page.locator("#delete-sure input").check()
    page.locator("#delete-data").click()
    expect(page.locator("#delete-receipt")).to_contain_text("Stopped 1 running job(s) first", timeout=120_000)
    expect(page.locator("#delete-receipt")).to_contain_text("Nothing of yours is left")
    for tab, element in (("Packs", "#gallery"), ("Train", "#train-summary"), ("Selfies", "#photo-cards")):
        page.get_by_role("tab", name=tab).click()
        expect(page.locator(element)).not_to_contain_text("dee-face")
    expect(page.locator(".photo-card")).to_have_count(0)
    page.get_by_role("tab", name="Jobs").click()
    expect(page.locator("#jobs-table")).not_to_contain_text("slow", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "many-7-deleted.png"), full_page=True)
