"""``workbench demo``: the whole chain on the bundled sample set, end to end.

check -> train -> generate (one pack, 2 samplers x 2 step counts x 2 seeds) -> score -> report.
With a tiny family it runs on a CPU in about a minute; with ``--base sdxl`` the same code runs real
weights on a GPU. Each stage writes its own directory in the workspace and is skipped when done.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .config import Settings
from .faces import get_analyzer
from .generate import generate
from .likeness import train_likeness
from .metrics import score
from .models import get_family
from .report import write_report
from .selfies import check_selfies
from .store import Manifest, Workspace, write_manifest

SAMPLE_SET = Path(__file__).resolve().parent.parent / "datasets" / "sample-selfies" / "aws_rek_subject1"
DEMO_PACK = "corporate-headshot"


def run_demo(settings: Settings | None = None, family: str = "tiny-sd", base: str | None = None,
             selfies: str | Path = SAMPLE_SET, train_steps: int | None = None, progress: bool = True) -> Path:
    settings = settings or Settings()
    fam = get_family(family)
    workspace = Workspace(settings.home)
    name = f"demo-{Path(selfies).name}-{fam.name}"
    analyzer = get_analyzer()
    started = time.perf_counter()
    # 1. check the selfies
    check_dir = workspace.new_dir("selfie-sets", Path(selfies).name) / "check"
    report = check_selfies(selfies, analyzer=analyzer, out=check_dir, progress=progress)
    print(f"check: {report.verdict}, {report.set['usable']}/{report.set['count']} photos usable")
    # 2. train a likeness (a few steps on tiny; the family default on real weights)
    likeness = train_likeness(selfies, workspace.area("likenesses") / name, family=fam.name, base=base,
                              settings=settings, analyzer=analyzer, progress=progress,
                              steps=train_steps or (20 if fam.tiny else None))
    # 3. generate a small grid: 2 samplers x 2 step counts x 2 seeds over 2 prompts of one pack
    samplers = ["euler", "dpmpp_2m"] if fam.arch != "flux" else ["flow_euler"]
    steps = [4, 8] if fam.tiny else [20, 30]
    run = generate(likeness, [DEMO_PACK], workspace.area("runs") / name, samplers=samplers, steps=steps,
                   seeds=[0, 1], prompts_per_pack=2, settings=settings, progress=progress)
    # 4. score identity and quality
    scores = score(run.path, progress=progress)
    # 5. report
    out = workspace.new_dir("reports", name)
    facts = {"family": fam.name, "model": likeness.card["model"]["location"], "licence": fam.licence,
             "recognizer": f"{analyzer.name} ({analyzer.version})", "selfies": str(selfies),
             "check verdict": report.verdict, "likeness": str(likeness.path),
             "chosen step": f"{likeness.card['chosen_step']} ({likeness.card['selection_reason']})",
             "generation run": str(run.path), "seeds": "0, 1", "samplers": ", ".join(samplers),
             "steps": ", ".join(map(str, steps))}
    page = write_report(out, f"Likeness Workbench demo — {fam.name}", facts,
                        check=report.table()[["file", "status", "flags", "advice"]],
                        curve=pd.DataFrame(likeness.card["curve"]), images=run.table, image_root=run.path,
                        scores=scores, tiny=fam.random_weights)
    write_manifest(out, Manifest(kind="report", status="done", inputs={"selfies": str(Path(selfies).resolve()),
                   "likeness": str(likeness.path), "run": str(run.path)}, config={"family": fam.name, "base": base},
                   seeds=[0, 1], timings={"seconds": time.perf_counter() - started},
                   outputs={"html": str(page), "markdown": str(out / "report.md")}))
    return page
