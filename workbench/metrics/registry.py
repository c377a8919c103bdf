"""Every metric the workbench reports, declared once: name, level, direction, range, whether it is a
rate, what it needs, and a one-line definition with its source. ``score``, studies, suites, reports,
plots and the app read it; a spec that names an unknown metric fails when it loads.

Adding a metric is one ``register(Metric(...))`` here naming its producer, and the producer that computes it
(``producers.py``); ``score`` runs the producers the registered metrics name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import unknown_name

Level = Literal["image", "group", "run", "cell"]


@dataclass(frozen=True)
class Metric:
    name: str
    level: Level  # image: per image; group: per prompt group; run: per run; cell: per study cell
    higher_is_better: bool | None  # None: neither (a property, e.g. exposure, seconds)
    definition: str
    source: str = ""
    range: tuple[float | None, float | None] = (None, None)
    unit: str = ""
    rate: bool = False  # a share of successes: Wilson intervals, not bootstrap
    needs: str = ""  # recognizer | clip | lpips | "" (nothing)
    producer: str = ""  # what computes it (producers.py: a function that emits it at its level)
    title: str = ""  # its name in plain words, for people who read the app, not the code
    plain: str = ""  # what it means, in one plain line
    scale: str = ""  # how to read a value ("{threshold}": the recognizer's match threshold)

    def read_as(self, threshold: float | None = None) -> str:
        """How to read a value, with the recognizer's match threshold filled in where the scale needs it."""
        if "{threshold}" not in self.scale:
            return self.scale
        return self.scale.format(threshold=f"{threshold:.2f}") if threshold is not None else \
            "higher is more alike"

    @property
    def direction(self) -> str:
        return {True: "higher is better", False: "lower is better", None: "neither"}[self.higher_is_better]


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric``; its producer (``producers.py``) must exist and emit it."""
    from .producers import PRODUCERS

    if metric.producer not in PRODUCERS or metric.name not in PRODUCERS[metric.producer].emits:
        raise ValueError(f"metric {metric.name!r}: no producer {metric.producer!r} emits it (metrics/producers.py)")
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    if name in METRICS:
        return METRICS[name]
    raise unknown_name("metric", name, METRICS)


def planned(level: str, recognizer_pass: int = 0) -> list:
    """The producers the registered metrics name at ``level``, in registry order: what ``score`` runs. From
    the second recognizer on, only those that run per recognizer."""
    from .producers import PRODUCERS

    names = list(dict.fromkeys(metric.producer for metric in METRICS.values()))
    chosen = [PRODUCERS[name] for name in names if PRODUCERS[name].level == level]
    return [p for p in chosen if p.per_recognizer or recognizer_pass == 0]


def is_rate(name: str) -> bool:
    return name in METRICS and METRICS[name].rate


# similarities are read at the recognizer's match threshold
SIMSCALE = "{threshold} or more: likely the same person; well below: someone else"
SIM = "similarity (ArcFace: cosine; dlib: 1 - 0.7 d / 0.6, unclipped)"
for _metric in [
    Metric("face_detected", "image", True, "1 if the recognizer's detector finds a face in the generated image, else 0",
           "detection rate as in PhotoMaker / InstantID evaluations", (0, 1), rate=True, needs="recognizer",
           title="Face found", plain="share of images in which a face is found",
           scale="1 = a face in every image",
           producer="identity"),
    Metric("test_facesim", "image", True,
           f"mean {SIM} of the generated face to the likeness's test photos: never trained on, never used to "
           "choose the checkpoint", "FaceSim / ID similarity (DreamBooth, PhotoMaker, InstantID, PuLID)",
           needs="recognizer",
           title="Looks like the person", plain="how much the face resembles photos of the person the model never saw",
           scale=SIMSCALE,
           producer="identity"),
    Metric("test_facesim_max", "image", True, f"highest {SIM} of the generated face to any test photo",
           needs="recognizer",
           title="Closest match to a photo of the person",
           plain="the best resemblance to any one unseen photo of the person",
           scale=SIMSCALE,
           producer="identity"),
    Metric("train_facesim", "image", True,
           f"mean {SIM} to the training photos: what the model saw, not a test score (shown when a set has no "
           "test group)", needs="recognizer",
           title="Looks like the training photos",
           plain="resemblance to the photos the model learned from (not a test)",
           scale=SIMSCALE,
           producer="identity"),
    Metric("nearest_train_facesim", "image", False,
           f"highest {SIM} to any training photo: high values mean the model reproduces a training photo",
           "memorisation check, Carlini et al. 2023 / Somepalli et al. 2023", needs="recognizer",
           title="Closest to one training photo", plain="how near the image comes to copying one uploaded photo",
           scale="lower is safer; near 1 is a copy",
           producer="identity"),
    Metric("identity_spread", "group", False,
           "mean pairwise (1 - identity similarity) of the generated faces in a prompt group: identity drift "
           "between outputs (was called face_div; it is not PhotoMaker's Face-Div)", needs="recognizer",
           title="Identity drift", plain="how much the person's face changes between images of one prompt",
           scale="0 = the same face every time",
           producer="identity_spread"),
    Metric("face_div_photomaker", "group", True,
           "PhotoMaker's Face-Div: mean pairwise LPIPS between the detected face regions of a prompt group's images "
           "(the detector's box, squared and resized to 128 px): variety of pose, expression, light and framing",
           "Face Div of PhotoMaker (Li et al. 2024); LPIPS of Zhang et al. 2018", (0, None), needs="lpips",
           title="Variety of faces",
           plain="how different the face regions look between images of one prompt (pose, light, expression)",
           scale="0 = identical; about 0.3-0.6 is varied",
           producer="face_div"),
    Metric("face_div_aligned", "group", True,
           "mean pairwise LPIPS between ArcFace-aligned 128 px crops of a prompt group's faces: variety of pose, "
           "expression and light with position and scale taken out (not comparable with PhotoMaker's Face-Div)",
           "LPIPS of Zhang et al. 2018 on 5-point aligned crops", (0, None), needs="lpips",
           title="Variety of expressions", plain="how different the aligned faces look between images of one prompt",
           scale="0 = identical; about 0.3-0.6 is varied",
           producer="face_div"),
    Metric("copy_paste_gap", "image", False,
           f"nearest-training-photo {SIM} minus mean test-photo {SIM}: how much closer the output is to one "
           "photo it was trained on than to the person", "copy-paste metric of InstantID / PuLID discussions",
           needs="recognizer",
           title="Copying gap", plain="how much closer an image is to one training photo than to the person in general",
           scale="compare with the real photos' gap; above it means copying",
           producer="identity"),
    Metric("copy_paste_gap_real", "image", None,
           "the same gap for each real test photo (nearest training photo minus the other test photos): what a "
           "never-trained photo of the person scores; a likeness copies when its gap exceeds this",
           needs="recognizer",
           title="Copying gap of real photos",
           plain="the same gap for real unseen photos of the person: the yardstick for the copying gap",
           scale="a reference value",
           producer="real_copy_paste_gap"),
    Metric("id_match_rate", "image", True,
           "the share of the person's test photos the generated face is verified against: each (face, test photo) "
           "pair decided at the recognizer's threshold, as that threshold was calibrated or published (one pair, "
           "not a mean); the threshold and its source are in the row's note and the report's protocol",
           "verification at a fixed false-match rate (NIST FRVT); dlib's published same-person distance 0.6",
           (0, 1), needs="recognizer",
           title="Verified as the person",
           plain="share of the person's unseen photos that the face is verified against",
           scale="1 = verified against every photo",
           producer="identity"),
    Metric("sharpness", "image", True, "variance of the Laplacian of the 128 px grey face crop (whole image without "
           "a face); the row's 'region' says which", "Pech-Pacheco et al. 2000", (0, None),
           title="Sharpness", plain="how much fine detail the face (or image) has",
           scale="higher is sharper; below about 100 looks blurred",
           producer="no_reference"),
    Metric("exposure", "image", None, "mean grey level of the face crop (whole image without a face), 0-1",
           range=(0, 1),
           title="Brightness", plain="how bright the face (or image) is",
           scale="0 = black, 1 = white; 0.3-0.7 is well exposed",
           producer="no_reference"),
    Metric("clip_score", "image", True, "CLIP score of the image and its prompt with the trigger replaced by the "
           "class word, 100 x max(cos, 0)", "Hessel et al. 2021 (torchmetrics CLIPScore)", (0, 100), needs="clip",
           title="Matches the prompt", plain="how well the image matches its prompt's words",
           scale="0-100; about 30 or more is a good match",
           producer="clip_score"),
    Metric("clip_iqa_quality", "image", True, "CLIP-IQA P('Good photo.' vs 'Bad photo.')",
           "Wang et al. 2023 (torchmetrics CLIPImageQualityAssessment)", (0, 1), needs="clip",
           title="Photo quality", plain="how much the image looks like a good photo rather than a bad one",
           scale="0-1; higher is better",
           producer="clip_iqa"),
    Metric("clip_iqa_sharpness", "image", True, "CLIP-IQA P('Sharp photo.' vs 'Blurry photo.')",
           "Wang et al. 2023", (0, 1), needs="clip",
           title="Looks sharp", plain="how much the image looks sharp rather than blurry",
           scale="0-1; higher is sharper",
           producer="clip_iqa"),
    Metric("clip_iqa_noisiness", "image", True, "CLIP-IQA P('Clean photo.' vs 'Noisy photo.'): higher = cleaner",
           "Wang et al. 2023", (0, 1), needs="clip",
           title="Looks clean", plain="how much the image looks clean rather than noisy",
           scale="0-1; higher is cleaner",
           producer="clip_iqa"),
    Metric("fid_clip", "run", False, "Fréchet distance of CLIP image features, generated vs reference photos",
           "Heusel et al. 2017; Kynkäänniemi et al. 2023 (CLIP features)", (0, None), needs="clip",
           title="Distance from real photos",
           plain="how far the set of images is from the set of real photos, as a whole",
           scale="0 = indistinguishable; lower is better",
           producer="distribution"),
    Metric("kid_clip", "run", False, "kernel inception distance on CLIP features (unbiased MMD^2, polynomial kernel)",
           "Bińkowski et al. 2018", needs="clip",
           title="Distance from real photos (small sets)", plain="the same distance, reliable for small sets",
           scale="0 = indistinguishable; lower is better",
           producer="distribution"),
    Metric("kid_clip_std", "run", None, "standard deviation of KID over its subsets", needs="clip",
           title="Spread of that distance", plain="how much the small-set distance varies between subsets",
           scale="a reference value",
           producer="distribution"),
    Metric("seconds_per_image", "image", False, "wall seconds to render one image (batch 1, after a warm-up, "
           "pipeline loaded once per study)", unit="s", range=(0, None),
           title="Seconds per image", plain="time to render one image",
           scale="lower is faster",
           producer="study_timing"),
    Metric("peak_gpu_memory_gb", "cell", False, "the highest GPU memory torch allocated while the cell rendered",
           unit="GB", range=(0, None),
           title="GPU memory", plain="the most GPU memory used while rendering",
           scale="GB; lower fits smaller cards",
           producer="study_timing"),
    Metric("test_facesim_before_detailer", "image", True, "test FaceSim of the same image before the face detailer "
           "re-rendered its face (the row of test_facesim is after)", needs="recognizer",
           title="Looks like the person, before face touch-up",
           plain="resemblance before the face detailer re-drew the face",
           scale=SIMSCALE,
           producer="before_detailer"),
    Metric("gate_flagged", "cell", False, "share of the cell's photos the upload gate flagged (any flag)",
           range=(0, 1), rate=True,
           title="Photos flagged by the check", plain="share of photos the upload check warned about",
           scale="0-1",
           producer="upload_gate"),
    Metric("gate_failed", "cell", False, "share of the cell's photos the upload gate refused", range=(0, 1),
           rate=True,
           title="Photos refused by the check", plain="share of photos the upload check refused",
           scale="0-1",
           producer="upload_gate"),
    Metric("gate_matching_flag", "cell", True, "share of the cell's photos flagged with the flag meant for its "
           "degradation (blur -> blurry, ...)", range=(0, 1), rate=True,
           title="Right problem found", plain="share of damaged photos the check flagged with the right problem",
           scale="1 = every one",
           producer="upload_gate"),
    Metric("gate_ready", "cell", None, "1 if the gate called the whole set ready", range=(0, 1), rate=True,
           title="Set called ready", plain="whether the check called the whole set ready",
           scale="1 = ready",
           producer="upload_gate"),
]:
    register(_metric)
