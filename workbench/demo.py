"""``workbench demo``: the whole chain on the bundled sample set, end to end.

check -> train -> generate (one pack, 2 samplers x 2 step counts x 2 seeds) -> score -> report.
With a tiny family it runs on a CPU in about a minute; with ``--base sdxl`` the same code runs real
weights on a GPU. Each stage writes its own directory in the workspace and is skipped when done.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from . import resources
from .chain import chain_folders, run_chain
from .config import Settings
from .faces import get_analyzer
from .lineage import link
from .models import get_family
from .models.architectures import get_architecture
from .report import write_report
from .store import Manifest, Workspace, write_manifest

SAMPLE_SET = "aws_rek_subject1"  # a bundled sample set (resources.samples()), or pass a folder
DEMO_PACK = "corporate-headshot"


def run_demo(settings: Settings | None = None, family: str = "tiny-sd", base: str | None = None,
             selfies: str | Path = SAMPLE_SET, train_steps: int | None = None, progress: bool = True) -> Path:
    """The whole chain on a bundled sample set (by name) or a folder, then the report; returns its page."""
    if not Path(selfies).is_dir():
        selfies = resources.samples() / str(selfies)
    settings = settings or Settings()
    fam = get_family(family)
    name = f"demo-{Path(selfies).name}-{fam.name}"
    started = time.perf_counter()
    # 1-4. check, train (a few steps on tiny; the family default on real weights), generate 2 samplers x 2
    # step counts x 2 seeds over 2 prompts of one pack, score
    samplers = list(get_architecture(fam.arch).demo_samplers)
    steps = [4, 8] if fam.tiny else [20, 30]
    folders = chain_folders(settings.home, name)
    folders["check_dir"] = Workspace(settings.home).new_dir("selfie-sets", Path(selfies).name) / "check"
    chain = run_chain(selfies, **folders, family=fam.name, base=base, settings=settings,
                      train={"steps": train_steps or (20 if fam.tiny else None)}, packs=[DEMO_PACK], samplers=samplers,
                      steps=steps, seeds=[0, 1], prompts_per_pack=2, progress=progress)
    report, likeness, run, scores = chain.check, chain.likeness, chain.run, chain.scores
    photos = report.set.get("photos", report.set["count"])
    print(f"check: {report.verdict}, {report.set['usable']}/{photos} photos usable")
    workspace = Workspace(settings.home)
    analyzer = get_analyzer()
    # 5. report
    out = workspace.new_dir("reports", name)
    facts = {"family": fam.name, "model": likeness.card["model"]["location"], "licence": fam.licence,
             "recognizer": f"{analyzer.name} ({analyzer.version})", "selfies": str(selfies),
             "check verdict": report.verdict, "likeness": str(likeness.path),
             "chosen step": f"{likeness.card['chosen_step']} ({likeness.card['selection_reason']})",
             "generation run": str(run.path), "seeds": "0, 1", "samplers": ", ".join(samplers),
             "steps": ", ".join(map(str, steps))}
    from .metrics import summarize
    from .protocol import protocol_facts

    protocol = protocol_facts(likeness.path, run.path, summary=summarize(scores, ["sampler", "steps"]))
    page = write_report(out, f"Likeness Workbench demo — {fam.name}", facts,
                        check=report.table()[["file", "status", "flags", "advice"]],
                        curve=pd.DataFrame(likeness.card["curve"]), images=run.table, image_root=run.path,
                        scores=scores, tiny=fam.random_weights, protocol=protocol)
    write_manifest(out, Manifest(kind="report", status="done", inputs={"selfies": str(Path(selfies).resolve()),
                   "likeness": str(likeness.path), "run": str(run.path)}, config={"family": fam.name, "base": base},
                   seeds=[0, 1], timings={"seconds": time.perf_counter() - started},
                   outputs={"html": str(page), "markdown": str(out / "report.md")},
                   links={"selfies": link(selfies, out), "likeness": link(likeness.path, out),
                          "run": link(run.path, out)}))
    return page
