"""What a study's design can conclude, said before anything trains.

Comparisons carry sign-flip permutation p-values on the independent units: the people when the study has
several, else its training replicates, else the images of one likeness (a within-likeness analysis, which
says nothing about other people). With ``n`` units the smallest two-sided p-value any result can reach is
``2 / 2**n``: three people can never show p < 0.05 (0.25 is the floor). Intervals need ``MIN_N`` units at
the level they resample (``metrics/aggregate.py``). Test photos come from whole shoots when a person's set
has two or more (else they share a shoot with training photos, and every report says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..metrics.aggregate import MIN_N

ALPHA = 0.05


@dataclass
class PersonDesign:
    name: str
    photos: int
    shoots: int
    test_photos: int
    test_by_shoot: bool  # the test photos are whole shoots that no training photo comes from
    note: str = ""


@dataclass
class DesignCheck:
    study: str
    kind: str
    people: list[PersonDesign]
    replicates: int
    images_per_cell: int  # per likeness: packs x prompts x seeds
    unit: str  # what the comparisons' p-values and the outermost interval resample
    units: int
    smallest_p: float
    intervals: dict[str, str] = field(default_factory=dict)  # level -> "yes" or why not
    conclusion: str = ""

    def lines(self) -> list[str]:
        """The check as a person reads it: one line per finding."""
        out = [f"design of {self.study} ({self.kind}): {_people(len(self.people))} x {self.replicates} training "
               f"replicate(s), {self.images_per_cell} images per likeness and cell"]
        for person in self.people:
            test = (f"{person.test_photos} test photo(s) from their own shoot" if person.test_by_shoot else
                    f"{person.test_photos} test photo(s) sharing a shoot with training photos" if person.test_photos
                    else "no test photos")
            out.append(f"  {person.name}: {person.photos} photos in {person.shoots} shoot(s); {test}"
                       + (f" ({person.note})" if person.note else ""))
        out.append(f"  comparisons: sign-flip p-values over {self.units} {self.unit}; the smallest possible is "
                   f"{self.smallest_p:.3g}")
        out += [f"  interval at the {level} level: {said}" for level, said in self.intervals.items()]
        out.append(f"  conclusion: {self.conclusion}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"


def smallest_p(units: int) -> float:
    """The smallest two-sided p-value an exact sign-flip test over ``units`` independent units can give."""
    return 1.0 if units < 2 else 2.0 / 2**units


def person_design(name: str, folder: Path, train: dict[str, Any], reference_photos: int | None = None
                  ) -> PersonDesign:
    """How this person's photos will split, estimated from the photos alone (capture times, else backgrounds
    from a Pillow histogram: the check's face boxes are not known yet, and a study's driver loads no OpenCV)."""
    from ..errors import ConfigError
    from ..images import list_images
    from ..likeness.splits import background_histogram_light, find_shoots, split_photos

    files = list_images(folder)
    shoots, _ = find_shoots(files, {}, features=background_histogram_light)  # no OpenCV on a study's driver
    n_shoots = len(set(shoots.values()))
    if reference_photos is not None:  # upload-quality: references held out by shoot, never trained on
        from .kinds.upload_quality import MIN_POOL, reference_draw

        held, _ = reference_draw(files, min(reference_photos, max(0, len(files) - MIN_POOL)), shoots)
        by_shoot = bool(held) and not {shoots[p] for p in held} & {shoots[p] for p in files if p not in held}
        return PersonDesign(name, len(files), n_shoots, len(held), by_shoot)
    try:
        splits = split_photos(files, shoots, train.get("validation"), train.get("test"), 0)
    except ConfigError as exc:
        return PersonDesign(name, len(files), n_shoots, 0, False, note=str(exc))
    return PersonDesign(name, len(files), n_shoots, len(splits.test),
                        bool(splits.test) and not splits.test_shares_shoot_with_train, note=splits.note
                        if not splits.test else "")


def design_check(spec) -> DesignCheck:
    """What ``spec`` can conclude: per person the split, the unit of the comparisons and the smallest p-value
    it allows, and at which levels intervals exist."""
    references = spec.reference_photos if spec.kind == "upload-quality" else None
    people = [person_design(name, folder, spec.train, references) for name, folder in spec.identity_sets()]
    images = len(spec.packs) * (spec.prompts_per_pack or 1) * len(spec.seeds)
    if len(people) > 1:
        unit, units = "people", len(people)
    elif spec.replicates > 1:
        unit, units = "training replicates of one person", spec.replicates
    else:
        unit, units = "images of one likeness", images
    intervals = {
        "people": "yes" if len(people) >= MIN_N else f"no: {_people(len(people))} (an interval needs {MIN_N})",
        "training replicates": ("yes, nested within people" if len(people) > 1 and spec.replicates > 1 else
                                "yes" if spec.replicates >= MIN_N else
                                f"no: {spec.replicates} replicate(s) (an interval needs {MIN_N})"),
        "images": (f"yes, within one likeness only ({images} per cell)" if len(people) == 1 and spec.replicates == 1
                   and images >= MIN_N else "nested within the levels above" if len(people) > 1 or
                   spec.replicates > 1 else f"no: {images} images per cell (an interval needs {MIN_N})"),
    }
    p = smallest_p(units)
    tested = [person for person in people if person.test_photos]
    if len(people) == 1 and spec.replicates == 1:
        conclusion = ("within-likeness only: differences over this one likeness's prompts and seeds, not over "
                      "people; add identities (at least 5) to conclude about people")
    elif p > ALPHA:
        conclusion = (f"cannot reach p < {ALPHA:g}: {units} {unit} allow p >= {p:.3g}; add "
                      f"{max(0, 6 - units)} more for a two-sided test at {ALPHA:g}")
    else:
        conclusion = f"can conclude at p < {ALPHA:g} over {units} {unit}"
        if len(people) >= MIN_N:
            conclusion += ", with intervals at the people level"
    if len(tested) < len(people):
        conclusion += f"; {len(people) - len(tested)} of {len(people)} people have no test photos (no identity score)"
    shared = [person.name for person in tested if not person.test_by_shoot]
    if shared:
        conclusion += f"; test photos share a shoot with training for {', '.join(shared)}"
    return DesignCheck(spec.name, spec.kind, people, spec.replicates, images, unit, units, p, intervals, conclusion)
