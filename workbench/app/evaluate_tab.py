"""Evaluate tab: score a generation run (tables and plot), and run a QA suite (pass/fail per threshold).
Both run as jobs: they survive a reload, show in the Jobs tab, and a suite's training and images can be
cancelled."""

from __future__ import annotations

import io
import json
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from workbench import IMAGES, Jobs, metric_plot, read_scores, resources, run_suite, score, suite_files, summarize

from .common import describe, friendly, keep_choice, names_in, own, user_settings

SUITES = resources.suites()


def runnable_suites(settings) -> list[str]:
    """Suites whose model weights are here (a GPU suite on a laptop is not offered)."""
    from workbench import get_family, load_suite, weights_status

    names = []
    for path in suite_files(SUITES):
        spec = load_suite(path)
        family = get_family(spec.family)
        local_base = spec.base and Path(spec.base).expanduser().exists()
        if family.tiny or local_base or (not spec.base and weights_status(family, settings).startswith("in the")):
            names.append(path.stem)
    return names


def headline(table: pd.DataFrame, threshold: float | None) -> str:
    """The run's result in one or two sentences, before any table: likeness first, then faces found."""
    from .words import not_measured, number, title

    summary = summarize(table[table.image_id.notna()].assign(all="all"), ["all"])
    rows = {r["metric"]: r for r in summary.to_dict("records") if r["n"]}
    lines = []
    for metric in ("test_facesim", "train_facesim"):
        if metric in rows:
            row = rows[metric]
            verdict = ""
            if threshold is not None:
                verdict = " — likely the same person" if row["mean"] >= threshold else " — not clearly the person"
            span = (f" (95% range {number(row['ci_low'])} to {number(row['ci_high'])})" if pd.notna(row["ci_low"])
                    else "")
            lines.append(f"**{title(metric)}: {number(row['mean'])}**{span}{verdict}, over {row['n']} images.")
            break
    if "face_detected" in rows:
        found = rows["face_detected"]
        lines.append(f"A face was found in {found['mean']:.0%} of the {found['n']} images.")
    if not lines:
        lines.append("No face-based result: no image had a face the recognizer could find.")
    missing = not_measured(summary)
    if missing:
        lines.append(f"Not measured in this run: {', '.join(missing)} (they need faces in the images, unseen "
                     "photos of the person, or the image-quality model).")
    return "\n\n".join(lines)


def run_family(run_path: Path) -> str | None:
    from workbench import read_images

    table = read_images(run_path)
    return str(table["family"].iloc[0]) if "family" in table and len(table) else None


def is_test_model(family: str | None) -> bool:
    from workbench import FAMILIES

    return family in FAMILIES and FAMILIES[family].random_weights


def build(settings, shared: dict) -> dict:
    from .words import NOISE_BANNER, RESULT_WIDTHS, checks_table, results_table

    with gr.Tab("Evaluate") as tab:
        result_headline = gr.Markdown(elem_id="score-headline")
        banner = gr.Markdown(NOISE_BANNER, visible=False, elem_id="evaluate-banner")
        summary = gr.Dataframe(label="Every measure, by sampler and steps (average and 95% range)", interactive=False,
                               elem_id="score-summary", wrap=True, visible=False, column_widths=RESULT_WIDTHS)
        plot = gr.Image(label="Measures vs steps", type="pil", visible=False)
        with gr.Row():
            run = gr.Dropdown([], label="Generation run", elem_id="run-choice")
            refresh = gr.Button("Refresh runs", elem_id="refresh-runs")
            score_button = gr.Button("Score", variant="primary", elem_id="score-button")
        score_status = gr.Markdown(elem_id="score-status")
        gr.Markdown("### QA suite\nA fixed recipe (photos, training, packs) with limits on its results: it passes "
                    "or fails, with a report.")
        verdict = gr.Markdown(elem_id="suite-verdict")
        checks = gr.Dataframe(label="Limits", interactive=False, wrap=True, visible=False, elem_id="suite-checks")
        report_file = gr.File(label="Report (HTML)", visible=False, elem_id="suite-report")
        with gr.Row():
            suite = gr.Dropdown(runnable_suites(settings), label="QA suite (those that can run on this machine)",
                                elem_id="suite-choice")
            suite_button = gr.Button("Run suite", elem_id="suite-button")
            suite_cancel = gr.Button("Cancel suite", elem_id="suite-cancel")
        suite_status = gr.Markdown(elem_id="suite-status")
        score_job, suite_job, shown = gr.State(None), gr.State(None), gr.State([])
        timer = gr.Timer(1.0)

    def runs(current, request: gr.Request):
        return keep_choice(names_in(Path(user_settings(settings, request).home) / "runs", IMAGES), current)

    def first_runs(request: gr.Request):
        return runs(None, request)

    @friendly
    def do_score(chosen, request: gr.Request):
        if not chosen:
            raise gr.Error("Pick a run (generate one in the Packs tab, then 'Refresh runs').")
        user = user_settings(settings, request)
        run_path = own(user, chosen, "runs")

        def work(context):
            score(run_path, clip_model=None, progress=False, settings=user)
            return {"run": str(run_path)}

        record = Jobs(user.home).start("score", f"Scoring run '{run_path.name}'", work)
        hidden = gr.update(visible=False)  # a new job: the previous results go until its own arrive
        return record.id, f"{record.title}: queued", "", hidden, gr.update(value=None, visible=False), hidden

    @friendly
    def do_suite(name, request: gr.Request):
        if not name:
            raise gr.Error("Pick a suite.")
        suites = {p.stem: p for p in suite_files(SUITES)}  # names in the page, never server paths
        if name not in suites:
            raise gr.Error("Pick one of the listed suites.")
        user = user_settings(settings, request)

        def work(context):
            result = run_suite(suites[name], settings=user, progress=False, callback=context.step)
            checks = json.loads(pd.DataFrame(result.checks).to_json(orient="records"))  # plain JSON types
            return {"passed": bool(result.passed), "checks": checks, "report": result.report, "name": result.name}

        record = Jobs(user.home).start("suite", f"QA suite '{name}'", work, pausable=True)
        hidden = gr.update(value=None, visible=False)
        return record.id, f"{record.title}: queued", "", hidden, hidden

    def poll(score_id, suite_id, already, request: gr.Request):
        """Each job's state while it runs; its results once, when it is done (they stay until the next job)."""
        from workbench import get_analyzer, match_threshold

        skip = gr.skip()
        out = [skip] * 10  # score status, headline, banner, summary, plot, suite status, verdict, checks, report, shown
        user = user_settings(settings, request)
        jobs = Jobs(user.home)
        done = list(already)
        if score_id and (record := jobs.get(score_id)) and score_id not in already:
            out[0] = describe(record)
            if record.state == "done":
                table = read_scores(record.result["run"])
                threshold, _ = match_threshold(get_analyzer(), home=user.home)
                png = metric_plot(table, plain=True)
                out[1] = headline(table, threshold)
                out[2] = gr.update(visible=is_test_model(run_family(Path(record.result["run"]))))
                out[3] = gr.update(value=results_table(summarize(table, ["sampler", "steps"]), threshold),
                                   visible=True)
                out[4] = gr.update(value=Image.open(io.BytesIO(png)) if png else None, visible=png is not None)
                done.append(score_id)
            elif record.finished:
                done.append(score_id)
        if suite_id and (record := jobs.get(suite_id)) and suite_id not in already:
            out[5] = describe(record)
            if record.state == "done":
                result = record.result
                out[5] = f"{record.title}: done"
                out[6] = f"### Suite {result['name']}: {'PASS' if result['passed'] else 'FAIL'}"
                out[7] = gr.update(value=checks_table(result["checks"]), visible=True)
                out[8] = gr.update(value=result["report"], visible=True)
                done.append(suite_id)
            elif record.finished:
                done.append(suite_id)
        out[9] = done if done != list(already) else skip
        return tuple(out)

    def stop_suite(suite_id, request: gr.Request):
        record = Jobs(user_settings(settings, request).home).cancel(suite_id) if suite_id else None
        return describe(record) if record else "No suite is running."

    def reattach(request: gr.Request):
        """After a reload: the latest scoring and suite, running or finished (their results come back)."""
        jobs = Jobs(user_settings(settings, request).home)
        return tuple((found[0].id if (found := jobs.list(kind)) else None) for kind in ("score", "suite"))

    refresh.click(runs, run, run)
    tab.select(runs, run, run)  # a run made in the Packs tab is offered when this tab opens
    score_button.click(do_score, run, [score_job, score_status, result_headline, banner, plot, summary])
    suite_button.click(do_suite, suite, [suite_job, suite_status, verdict, checks, report_file])
    suite_cancel.click(stop_suite, suite_job, suite_status)
    timer.tick(poll, [score_job, suite_job, shown], [score_status, result_headline, banner, summary, plot,
                                                     suite_status, verdict, checks, report_file, shown])
    return {"load": [(reattach, [score_job, suite_job]), (first_runs, [run])],
            "cleared_on_delete": [result_headline, summary, plot, verdict, checks, report_file, score_status,
                                  suite_status]}
