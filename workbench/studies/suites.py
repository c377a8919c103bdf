"""QA suites: identity-fidelity evaluations declared in YAML (``evaluation/suites/*.yaml``) and run by one
runner, as lm-evaluation-harness runs its tasks. A suite names its selfie set, family, training config,
packs and thresholds; whatever is missing in the workspace (likeness, runs) is built, so
``workbench suite FILE`` works from an empty workspace. It passes when every threshold holds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..chain import chain_folders, run_chain
from ..config import Settings
from ..errors import ConfigError
from ..lineage import link
from ..metrics import paired_difference, summarize
from ..metrics.aggregate import difference_of_means
from ..metrics.registry import get_metric
from ..models import get_family
from ..store import Manifest, Workspace, write_manifest, write_table
from .spec import GridSpec, load_yaml


class Threshold(BaseModel):
    """``metric``'s ``stat`` over all images must lie in [min, max]. With ``vs_baseline`` the value is
    the paired difference (likeness - base model, same prompt and seed) and ``stat`` one of mean /
    ci_low / ci_high of that difference."""

    model_config = ConfigDict(extra="forbid")
    metric: str
    stat: Literal["mean", "ci_low", "ci_high"] = "mean"
    min: float | None = None
    max: float | None = None
    vs_baseline: bool = False
    vs_real: bool = False  # copy_paste_gap: the generated images' gap minus the real test photos' gap
    why: str = ""


class SuiteSpec(GridSpec):
    baseline: bool = False  # also render the base model alone, for vs_baseline thresholds
    thresholds: list[Threshold] = Field(min_length=1)

    @model_validator(mode="after")
    def _pinned(self) -> SuiteSpec:
        """Similarity scales differ per recognizer: a suite's thresholds mean something for one only."""
        if any(name in {"auto", "all", "default"} for name in self.recognizers):
            raise ValueError("a suite names its recognizer ('recognizers: [dlib]', insightface or insightface:PACK), "
                             f"not {self.recognizers}: its thresholds are on that recognizer's scale")
        return self

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, value: list[Threshold]) -> list[Threshold]:
        for threshold in value:
            try:
                get_metric(threshold.metric)
            except ConfigError as exc:  # pydantic reports ValueErrors with the file and field
                raise ValueError(str(exc)) from None
        return value

    @field_validator("selfies")
    @classmethod
    def _has_selfies(cls, value: str | None) -> str:
        if not value:
            raise ValueError("a suite names its selfie set ('selfies: FOLDER')")
        return value


class SuiteResult(BaseModel):
    name: str
    passed: bool
    checks: list[dict]
    report: str


def load_suite(path: str | os.PathLike) -> SuiteSpec:
    """A QA suite spec from YAML, validated when it loads (metrics checked against the registry)."""
    return load_yaml(path, SuiteSpec)


def evaluate(threshold: Threshold, scores: pd.DataFrame, baseline: pd.DataFrame | None) -> dict:
    """One threshold against the tables: value, pass/fail, and a sentence saying why."""
    label = f"{threshold.metric} {threshold.stat}" + (" vs baseline" if threshold.vs_baseline else "") + (
        " vs real photos" if threshold.vs_real else "")
    result = _checked(threshold, label, scores, baseline)
    return {"metric": threshold.metric, "stat": threshold.stat, "vs_baseline": threshold.vs_baseline,
            "vs_real": threshold.vs_real, "min": threshold.min, "max": threshold.max, "why": threshold.why, **result}


def _checked(threshold: Threshold, label: str, scores: pd.DataFrame, baseline: pd.DataFrame | None) -> dict:
    if threshold.vs_real:
        generated = scores.loc[scores.metric == threshold.metric, "value"].dropna()
        real = scores.loc[scores.metric == f"{threshold.metric}_real", "value"].dropna()
        if generated.empty or real.empty:
            return {"check": label, "value": None, "passed": False, "message": f"{label}: no values (needs two or "
                    "more test photos with faces, and faces in the images)"}
        diff = difference_of_means(generated.tolist(), real.tolist())
        value = diff["mean_diff" if threshold.stat == "mean" else threshold.stat]
    elif threshold.vs_baseline:
        if baseline is None:
            return {"check": label, "value": None, "passed": False, "message": f"{label}: the suite has no baseline "
                    "run; set 'baseline: true'."}
        both = pd.concat([scores.assign(arm="likeness"), baseline.assign(arm="base")], ignore_index=True)
        diff = paired_difference(both[both.image_id.notna()], threshold.metric, "arm", "base", "likeness")
        value = diff["mean_diff" if threshold.stat == "mean" else threshold.stat]
    else:
        rows = scores[scores.metric == threshold.metric]
        if rows.empty:
            known = ", ".join(sorted(scores.metric.unique()))
            return {"check": label, "value": None, "passed": False,
                    "message": f"{label}: no such metric in the scores (known: {known})"}
        summary = summarize(rows.assign(all="all"), ["all"]).iloc[0]
        value = summary[threshold.stat]
        if not np.isfinite(value):
            reasons = "; ".join(sorted(rows.reason.dropna().unique())) or "no values"
            return {"check": label, "value": None, "passed": False, "message": f"{label}: no values ({reasons})"}
    bounds = []
    if threshold.min is not None and value < threshold.min:
        bounds.append(f"{value:.3f} < {threshold.min} (min)")
    if threshold.max is not None and value > threshold.max:
        bounds.append(f"{value:.3f} > {threshold.max} (max)")
    passed = bool(np.isfinite(value)) and not bounds
    message = f"{label} = {value:.3f}: " + ("ok" if passed else "FAILED, " + ", ".join(bounds or ["no value"]))
    return {"check": label, "value": float(value), "min": threshold.min, "max": threshold.max, "passed": passed,
            "message": message + (f" ({threshold.why})" if threshold.why else "")}


def run_suite(spec: SuiteSpec | str | os.PathLike, settings: Settings | None = None,
              progress: bool = True, executor: str = "serial", address: str | None = None,
              callback=None) -> SuiteResult:
    """Build what is missing, check every threshold, write the report. ``executor="ray"`` runs the whole
    suite as one Ray task (on a GPU worker when the family needs one); the workspace is shared storage.
    ``callback`` hears training steps and images (see ``run_chain``)."""
    from ..report import write_report

    spec = spec if isinstance(spec, SuiteSpec) else load_suite(spec)
    settings = settings or Settings()
    if executor == "ray":
        return _run_suite_on_ray(spec, settings, address)
    if executor != "serial":
        raise ConfigError(f"executor {executor!r}: expected serial or ray.")
    workspace = Workspace(settings.home)
    fam = get_family(spec.family)
    started = time.perf_counter()
    name = f"suite-{spec.name}"
    folders = chain_folders(settings.home, name)
    chain = run_chain(spec.path(spec.selfies), folders["likeness_dir"], folders["run_dir"],
                      check_dir=folders["check_dir"], family=spec.family, base=spec.base, settings=settings,
                      train=spec.train, packs=spec.packs, samplers=spec.samplers, steps=spec.steps, seeds=spec.seeds,
                      guidance=spec.guidance, prompts_per_pack=spec.prompts_per_pack, recognizers=spec.recognizers,
                      clip_model=spec.clip_model, progress=progress, callback=callback,
                      baseline_dir=workspace.area("runs") / f"{name}-baseline" if spec.baseline else None)
    likeness, run, scores, baseline = chain.likeness, chain.run, chain.scores, chain.baseline_scores
    checks = [evaluate(t, scores, baseline) for t in spec.thresholds]
    passed = all(c["passed"] for c in checks)
    out = workspace.new_dir("reports", name)
    table = pd.DataFrame(checks)
    write_table(table, out / "checks.parquet")
    facts = {"suite": spec.name, "verdict": "PASS" if passed else "FAIL", "spec": spec.source,
             "family": fam.name, "likeness": str(likeness.path), "run": str(run.path),
             "test photos": ", ".join(p.name for p in likeness.split("test")) or "none",
             "test shares a shoot with training": "YES: test FaceSim also measures 'same shoot'"
             if likeness.test_shares_shoot_with_train else "no",
             "recognizers": ", ".join(spec.recognizers), "seeds": ", ".join(map(str, spec.seeds))}
    from ..protocol import protocol_facts

    baseline_run = [workspace.area("runs") / f"{name}-baseline"] if spec.baseline else []
    protocol = protocol_facts(likeness.path, run.path, *baseline_run, summary=summarize(scores, ["sampler", "steps"]))
    page = write_report(out, f"QA suite {spec.name}: {'PASS' if passed else 'FAIL'}", facts, check=None,
                        curve=pd.DataFrame(likeness.card["curve"]), images=run.table, image_root=run.path,
                        scores=scores, tiny=fam.random_weights, sections=[("Thresholds", table)],
                        protocol=protocol)
    write_manifest(out, Manifest(kind="suite", status="done", inputs={"spec": spec.source, "run": str(run.path)},
                                 config=spec.model_dump(), seeds=list(spec.seeds),
                                 timings={"seconds": time.perf_counter() - started},
                                 outputs={"passed": passed, "report": str(page)},
                                 links={"likeness": link(likeness.path, out), "run": link(run.path, out)}))
    return SuiteResult(name=spec.name, passed=passed, checks=checks, report=str(page))


def _run_suite_on_ray(spec: SuiteSpec, settings: Settings, address: str | None) -> SuiteResult:
    from ..cluster import connect

    ray = connect(address, warm=1, imports=["workbench.studies.suites"])
    gpus = 0 if get_family(spec.family).tiny or settings.resolved_device() == "cpu" else 1
    task = ray.remote(run_suite).options(num_gpus=gpus, max_retries=1, retry_exceptions=True)
    return ray.get(task.remote(spec, settings, False))


def suite_files(folder: str | os.PathLike) -> list[Path]:
    return sorted(Path(folder).glob("*.yaml"))
