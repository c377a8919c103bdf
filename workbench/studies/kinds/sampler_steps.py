"""The sampler-steps study: one likeness per (identity, replicate); a cell per (sampler, steps) renders the
same prompts and seeds at batch 1, so test FaceSim, CLIP score, sharpness and seconds per image can be read
against steps, with paired differences between step counts and samplers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ...config import Settings
from ...faces import get_analyzer
from ...images import folder_entries
from ...likeness import Likeness
from ...metrics import summarize
from ...store import is_done
from ..plots import errors, mark_no_interval, png
from .base import FIDELITY, Assembled, Cell, StudyKind, comparisons, seconds_rows, warm_up

STEP_METRICS = ("test_facesim", "clip_score", "sharpness", "seconds_per_image")


class SamplerSteps(StudyKind):
    """One likeness per (identity, replicate); a cell per (sampler, steps) renders the same prompts and
    seeds at batch 1 on a pipeline loaded once per likeness, after a warm-up, so seconds per image are
    per image and load time stays out."""

    name = "sampler-steps"
    summary = "one likeness per person and replicate; a cell per sampler x steps, the same prompts and seeds"

    def variants(self):
        samplers, steps = self.spec.samplers or [self.family.sampler], self.spec.steps or [self.family.steps]
        return [(f"{s}-{n}", {"sampler": s, "steps": n}) for s in samplers for n in steps]

    def likeness(self, identity: str, replicate: int, out: Path, settings: Settings, progress: bool):
        key = (identity, replicate)
        if key not in self._shared:
            folder = out / "likenesses" / identity / f"r{replicate}"
            from ...generate import load_renderer

            self.build_shared(key, out, settings, progress)
            likeness = Likeness.load(folder)
            self._shared.clear()  # one renderer in memory at a time
            renderer = load_renderer(likeness, self.family, self.spec.base, settings)
            warm_up(renderer[0], self.family)
            self._shared[key] = (likeness, renderer)
        return self._shared[key]

    def shared_keys(self, cells):
        return sorted({(c.identity, c.replicate) for c in cells})

    def shared_key(self, cell):
        return (cell.identity, cell.replicate)

    def needs_check(self, identity: str, cells: list[Cell], out: Path) -> bool:
        """A person's set is checked unless every likeness of theirs these cells render from is trained."""
        return not all(is_done(out / "likenesses" / identity / f"r{c.replicate}") for c in cells)

    def face_photos(self, identity, cells, out):
        if not self.needs_check(identity, cells, out):
            return []
        return [path for path in folder_entries(dict(self.spec.identity_sets())[identity]) if path.is_file()]

    def prepare_identity(self, identity, cells, out, progress):
        """Check the person's selfies once (``likenesses/<identity>/check``): every replicate trains from that
        report. The faces the check finds stay in this process's analyzer, where scoring the test photos
        finds them."""
        if not self.needs_check(identity, cells, out):
            return None
        from ...selfies import check_selfies

        folder, analyzer = dict(self.spec.identity_sets())[identity], get_analyzer(self.spec.recognizers[0])
        return {"check": check_selfies(folder, analyzer, out=out / "likenesses" / identity / "check",
                                       progress=progress)}

    def build_shared(self, key, out, settings, progress):
        from ...likeness import train_likeness

        identity, replicate = key
        train_likeness(dict(self.spec.identity_sets())[identity], out / "likenesses" / identity / f"r{replicate}",
                       family=self.spec.family, base=self.spec.base, settings=settings, progress=progress,
                       analyzer=get_analyzer(self.spec.recognizers[0]),
                       report=self.prepared.get(identity, {}).get("check"),
                       **self.train_options(replicate))

    def run_cell(self, cell, folder, out, settings, progress):
        from ...generate import generate
        from ...metrics import score

        likeness, renderer = self.likeness(cell.identity, cell.replicate, out, settings, progress)
        run = generate(likeness, self.spec.packs, folder / "run", samplers=[cell.params["sampler"]],
                       steps=[cell.params["steps"]], seeds=self.spec.seeds, guidance=self.spec.guidance,
                       prompts_per_pack=self.spec.prompts_per_pack, batch_size=1, settings=settings,
                       progress=progress, renderer=renderer)
        table = score(run.path, recognizers=self.spec.recognizers, clip_model=self.spec.clip_model, progress=progress)
        return pd.concat([table, seconds_rows(run.table)], ignore_index=True)

    def assemble(self, table, cells):
        summary = summarize(table, ["sampler", "steps"])
        samplers = sorted(table["sampler"].dropna().unique())
        steps = sorted(table["steps"].dropna().unique())
        pairs = [(m, "steps", a, b) for m in (FIDELITY, "clip_score", "seconds_per_image")
                 for a, b in zip(steps, steps[1:], strict=False)]
        pairs += [(m, "sampler", samplers[0], other) for m in (FIDELITY, "clip_score") for other in samplers[1:]]
        diffs = comparisons(table, pairs)
        return Assembled(summary, [("Paired differences (b - a; same likeness, prompts and seeds; Holm-adjusted "
                                    "p over the family)", diffs)],
                         [("metrics-vs-steps", sampler_steps_plot(summary)),
                          ("fidelity-vs-time", tradeoff_plot(summary))])


def sampler_steps_plot(summary: pd.DataFrame) -> bytes:
    """Each metric vs steps, one line per sampler (and recognizer), 95% CI error bars where n >= 5."""
    fig = Figure(figsize=(4 * len(STEP_METRICS), 3.2))
    axes = fig.subplots(1, len(STEP_METRICS), squeeze=False)
    for ax, metric in zip(axes[0], STEP_METRICS, strict=True):
        part = summary[(summary["metric"] == metric) & (summary["n"] > 0)]
        lines = ["sampler", "recognizer"] if "recognizer" in part and part["recognizer"].nunique() > 1 else ["sampler"]
        for key, rows in part.groupby(lines):
            rows = rows.sort_values("steps")
            ax.errorbar(rows["steps"], rows["mean"], yerr=errors(rows), marker="o", capsize=3,
                        label=" / ".join(map(str, key if isinstance(key, tuple) else (key,))))
            mark_no_interval(ax, rows["steps"], rows)
        if part.empty:
            ax.text(0.5, 0.5, "no values\n(see the table's reasons)", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=8)
        ax.set_title(metric)
        ax.set_xlabel("steps")
    return png(fig)


def tradeoff_plot(summary: pd.DataFrame, fidelity: str = "test_facesim", quality: str = "clip_score") -> bytes:
    """Fidelity vs time, one point per (sampler, steps), coloured by the quality metric: where the
    cheap settings lose likeness."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    table = summary.pivot_table(index=["sampler", "steps"], columns="metric", values="mean", aggfunc="first")
    if fidelity not in table or "seconds_per_image" not in table or table[fidelity].isna().all():
        ax.text(0.5, 0.5, f"no {fidelity} values\n(no faces in the images?)", ha="center", va="center",
                transform=ax.transAxes)
        return png(fig)
    colour = table[quality] if quality in table and table[quality].notna().any() else None
    points = ax.scatter(table["seconds_per_image"], table[fidelity], c=colour, cmap="viridis")
    for (sampler, steps), row in table.iterrows():
        ax.annotate(f"{sampler} {steps}", (row["seconds_per_image"], row[fidelity]), fontsize=7)
    if colour is not None:
        fig.colorbar(points, ax=ax, label=quality)
    ax.set_xlabel("seconds per image")
    ax.set_ylabel(fidelity)
    ax.set_title("fidelity vs time (colour: quality)")
    return png(fig)


Kind = SamplerSteps
