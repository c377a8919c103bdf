"""The protocol a report leads with: who was evaluated, on which photos, what each interval covers (or why
there is none), which recognizer and threshold, and what code. Studies, suites and the demo all put it at
the top, so a reader never has to open a parquet file to learn that test photos shared a shoot with the
training photos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

SPLIT_RULE = ("when a person's set has two or more shoots (from capture times, else from backgrounds), the test "
              "photos are whole shoots that no training photo comes from; otherwise they are drawn at random and "
              "share a shoot with training photos. Validation photos only choose the checkpoint.")


def _cards(folder: Path) -> list[dict[str, Any]]:
    cards = []
    for path in sorted(folder.rglob("likeness.json")):
        try:
            cards.append({**json.loads(path.read_text(encoding="utf-8")), "_path": path.parent})
        except (OSError, ValueError):
            continue
    return cards


def _recognizers(folder: Path) -> list[str]:
    """What the scored runs under ``folder`` recorded of their recognizers: name, model hash, threshold."""
    said: dict[str, str] = {}
    for path in sorted(folder.rglob("manifest.json")):
        try:
            scores = json.loads(path.read_text(encoding="utf-8")).get("outputs", {}).get("scores") or {}
        except (OSError, ValueError):
            continue
        for facts in (scores.get("recognizers") or {}).values():
            threshold = facts.get("match_threshold")
            said[facts.get("resolved", "?")] = (
                f"{facts.get('resolved')} (model sha256 {str(facts.get('model_sha256'))[:16]}); match threshold "
                + (f"{threshold:.3f}: {facts.get('calibration')}" if threshold is not None else
                   f"none: {facts.get('calibration')}"))
    return list(said.values())


def intervals_said(summary: pd.DataFrame | None) -> str:
    """What the summary's intervals cover, from their ``ci_method`` and ``ci_note`` columns."""
    if summary is None or summary.empty or "ci_method" not in summary:
        return "no summary"
    methods = sorted({m for m in summary["ci_method"].dropna() if m})
    notes = summary.loc[summary["ci_method"].fillna("") == "", "ci_note"].dropna()
    parts = [f"{m}" for m in methods]
    if len(notes):
        parts.append(f"none for {len(notes)} of {len(summary)} rows ({', '.join(sorted(set(notes))[:3])})")
    return "; ".join(parts) or "none"


def protocol_facts(*folders: str | Path, design=None, summary: pd.DataFrame | None = None,
                   references: str | None = None) -> dict[str, str]:
    """The protocol of what was evaluated under ``folders`` (a study; a suite's or the demo's likeness and runs):
    people and their shoots, the split rule and each likeness's shoot overlap, replicates, what the intervals
    cover, the recognizer with its model hash and threshold source, the commit and versions."""
    from .provenance import git_commit
    from .store import package_versions

    roots = [Path(f) for f in folders]
    cards = [card for root in roots for card in _cards(root)]
    facts: dict[str, str] = {}
    if design is not None:
        facts["people"] = ", ".join(f"{p.name} ({p.photos} photos, {p.shoots} shoot(s))" for p in design.people)
        facts["replicates"] = (f"{design.replicates} independent training run(s) per person, each with the same "
                               "photo split (only training noise differs)")
        facts["what the design can conclude"] = design.conclusion
        facts["comparisons"] = (f"paired on every factor; sign-flip p-values over {design.units} {design.unit} "
                                f"(smallest possible {design.smallest_p:.3g}); Holm-adjusted over each family")
    facts["split rule"] = SPLIT_RULE
    if references:
        facts["references"] = references
    overlap = []
    for card in cards:
        test = len(card.get("splits", {}).get("test", []))
        shares = card.get("test_shares_shoot_with_train", False)
        where = next((card["_path"].relative_to(root) for root in roots if card["_path"].is_relative_to(root)
                      and card["_path"] != root), card["_path"].name)
        overlap.append(f"{where}: {test} test photo(s)" + (", SHARING a shoot with training photos" if shares and test
                                                          else ", from their own shoot" if test else
                                                          f" ({card.get('split_note') or 'no test group'})"))
    if overlap:
        facts["test photos per likeness"] = "; ".join(overlap)
    facts["intervals"] = intervals_said(summary)
    recognizers = list(dict.fromkeys(r for root in roots for r in _recognizers(root)))
    if recognizers:
        facts["recognizer"] = "; ".join(recognizers)
    facts["code"] = f"workbench commit {git_commit() or 'unknown (not a git checkout)'}"
    facts["versions"] = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    return facts
