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
from workbench import describe_job as describe

from .common import folders, friendly, own, user_settings

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


def readable(summary: pd.DataFrame) -> pd.DataFrame:
    """Numbers for reading: 2 decimals, the CI as one column, no internal column names."""
    rows = []
    for row in summary.to_dict("records"):
        ci = (f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if pd.notna(row.get("ci_low"))
              else (row.get("ci_note") or "—"))
        rows.append({"sampler": row.get("sampler"), "steps": row.get("steps"), "metric": row["metric"],
                     "images": row["n"], "mean": None if pd.isna(row["mean"]) else round(float(row["mean"]), 2),
                     "95% interval": ci})
    return pd.DataFrame(rows)


def build(settings, shared: dict) -> dict:
    with gr.Tab("Evaluate"):
        with gr.Row():
            run = gr.Dropdown([], label="Generation run", elem_id="run-choice")
            refresh = gr.Button("Refresh runs", elem_id="refresh-runs")
            score_button = gr.Button("Score", variant="primary", elem_id="score-button")
        score_status = gr.Markdown(elem_id="score-status")
        summary = gr.Dataframe(label="Summary by sampler and steps (mean, 95% CI)", interactive=False,
                               elem_id="score-summary")
        plot = gr.Image(label="Metrics vs steps", type="pil")
        with gr.Row():
            suite = gr.Dropdown(runnable_suites(settings), label="QA suite (those that can run on this machine)",
                                elem_id="suite-choice")
            suite_button = gr.Button("Run suite", elem_id="suite-button")
            suite_cancel = gr.Button("Cancel suite", elem_id="suite-cancel")
        verdict = gr.Markdown(elem_id="suite-verdict")
        checks = gr.Dataframe(label="Thresholds", interactive=False)
        report_file = gr.File(label="Report (HTML)")
        score_job, suite_job, shown = gr.State(None), gr.State(None), gr.State([])
        timer = gr.Timer(1.0)

    def runs(request: gr.Request):
        found = folders(Path(user_settings(settings, request).home) / "runs", IMAGES)
        return gr.update(choices=[(Path(p).name, p) for p in found], value=found[0] if found else None)

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
        return record.id, f"{record.title}: queued"

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

        record = Jobs(user.home).start("suite", f"QA suite '{name}'", work)
        return record.id, f"{record.title}: queued"

    def poll(score_id, suite_id, already, request: gr.Request):
        """Each job's state while it runs; its results once, when it is done."""
        skip = gr.skip()
        out = [skip] * 7  # score status, summary, plot, suite verdict, checks, report, shown
        jobs = Jobs(user_settings(settings, request).home)
        done = list(already)
        if score_id and (record := jobs.get(score_id)):
            out[0] = describe(record)
            if record.state == "done" and score_id not in already:
                table = read_scores(record.result["run"])
                png = metric_plot(table)
                out[1] = readable(summarize(table, ["sampler", "steps"]))
                out[2] = Image.open(io.BytesIO(png)) if png else None
                done.append(score_id)
        if suite_id and (record := jobs.get(suite_id)):
            out[3] = describe(record)
            if record.state == "done" and suite_id not in already:
                result = record.result
                out[3] = f"### Suite {result['name']}: {'PASS' if result['passed'] else 'FAIL'}"
                out[4] = pd.DataFrame(result["checks"])[["check", "value", "passed", "message"]].round(3)
                out[5] = result["report"]
                done.append(suite_id)
        out[6] = done if done != list(already) else skip
        return tuple(out)

    def stop_suite(suite_id, request: gr.Request):
        record = Jobs(user_settings(settings, request).home).cancel(suite_id) if suite_id else None
        return describe(record) if record else "No suite is running."

    def reattach(request: gr.Request):
        jobs = Jobs(user_settings(settings, request).home)
        return tuple((r.id if (r := jobs.latest_active(kind)) else None) for kind in ("score", "suite"))

    refresh.click(runs, None, run)
    score_button.click(do_score, run, [score_job, score_status])
    suite_button.click(do_suite, suite, [suite_job, verdict])
    suite_cancel.click(stop_suite, suite_job, verdict)
    timer.tick(poll, [score_job, suite_job, shown], [score_status, summary, plot, verdict, checks, report_file, shown])
    return {"load": [(reattach, [score_job, suite_job])]}
