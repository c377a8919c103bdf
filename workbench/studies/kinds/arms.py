"""The identity-arms study: every arm (the likeness, the base model, the IP-Adapter face or FaceID, and the
likeness with either) renders the same grid from the same likeness's training photos and is scored against
the same test photos, each beside its paired difference from the likeness."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import Field, field_validator

from ... import limits
from ...likeness import Likeness
from ...metrics import summarize
from ..plots import errors, mark_no_interval, png
from .base import Assembled, comparisons, seconds_rows
from .base import Options as NoOptions
from .sampler_steps import SamplerSteps


class Options(NoOptions):
    arms: list[str] = Field(default_factory=lambda: ["likeness", "base", "ip-adapter-face", "likeness+ip-adapter-face"])
    ip_scale: float = limits.field("ip_scale", 0.6)  # the IP-Adapter arms' image-prompt scale

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, value: list[str]) -> list[str]:
        from ...arms import ARMS

        unknown = [a for a in value if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
        return value


class Arms(SamplerSteps):
    """Every arm (likeness, base, IP-Adapter face, both) renders the same grid — prompts, seeds,
    sampler, steps — from the same likeness's training photos, and is scored against the same test
    photos; the report puts test FaceSim, id_match_rate, the copy-paste gap, Face-Div, CLIP score,
    seconds per image and peak GPU memory of each arm next to its paired difference from ``likeness``."""

    name = "arms"
    summary = "the likeness, the base model and the IP-Adapter arms on the same grid and test photos"
    Options = Options
    METRICS = ("test_facesim", "id_match_rate", "copy_paste_gap", "face_div_photomaker", "clip_score",
               "seconds_per_image")

    def variants(self):
        return [(arm, {"arm": arm, "ip_scale": self.spec.ip_scale}) for arm in self.spec.arms]

    def run_cell(self, cell, folder, out, settings, progress):
        import torch

        from ...generate import generate
        from ...metrics import score

        key = (cell.identity, cell.replicate)
        self.build_shared(key, out, settings, progress)
        likeness = Likeness.load(out / "likenesses" / cell.identity / f"r{cell.replicate}")
        cuda = settings.resolved_device().startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        run = generate(likeness, self.spec.packs, folder / "run", samplers=self.spec.samplers, steps=self.spec.steps,
                       seeds=self.spec.seeds, guidance=self.spec.guidance, prompts_per_pack=self.spec.prompts_per_pack,
                       batch_size=1, settings=settings, progress=progress, arm=cell.params["arm"],
                       ip_scale=cell.params["ip_scale"])
        peak = torch.cuda.max_memory_allocated() / 1024**3 if cuda else None
        table = score(run.path, likeness=likeness, recognizers=self.spec.recognizers, clip_model=self.spec.clip_model,
                      progress=progress, settings=settings)
        memory = pd.DataFrame([{"image_id": None, "metric": "peak_gpu_memory_gb", "value": peak, "recognizer": None,
                                "reason": None if peak is not None else "peak memory is measured on a GPU"}])
        return pd.concat([table, seconds_rows(run.table), memory], ignore_index=True)

    def assemble(self, table, cells):
        summary = summarize(table, ["cell"])
        arms = list(dict.fromkeys(c.id for c in cells))
        pairs = [(m, "cell", "likeness", arm) for m in ("test_facesim", "id_match_rate", "copy_paste_gap",
                                                         "clip_score", "seconds_per_image")
                 for arm in arms if arm != "likeness" and "likeness" in arms]
        diffs = comparisons(table, pairs)
        per_arm = summary[summary.metric.isin([*self.METRICS, "peak_gpu_memory_gb"])].pivot_table(
            index="cell", columns="metric", values="mean", aggfunc="first", dropna=False).reindex(arms).reset_index()
        return Assembled(summary, [("Paired differences from the likeness arm (same prompts, seeds and test photos; "
                                    "Holm-adjusted p)", diffs), ("One row per arm (means)", per_arm)],
                         [("arms", arms_plot(summary, arms))])


def arms_plot(summary: pd.DataFrame, arms: list[str]) -> bytes:
    """Test FaceSim, identity match rate and CLIP score per arm, 95% CI where n >= 5."""
    metrics = [m for m in ("test_facesim", "id_match_rate", "clip_score", "seconds_per_image")
               if (summary[(summary.metric == m)]["n"] > 0).any()] or ["test_facesim"]
    fig = Figure(figsize=(3.6 * len(metrics), 3.4))
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        rows = summary[summary.metric == metric].set_index("cell").reindex(arms)
        if rows["n"].fillna(0).sum() == 0:
            ax.text(0.5, 0.5, "no values\n(no faces in the images?)", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.bar(range(len(arms)), np.nan_to_num(rows["mean"].to_numpy(dtype=float)), yerr=errors(rows), capsize=4)
            mark_no_interval(ax, range(len(arms)), rows)
        ax.set_xticks(range(len(arms)), arms, rotation=25, ha="right", fontsize=8)
        ax.set_title(metric)
    return png(fig)


Kind = Arms
