"""Train / validation / test photos of a likeness, split by shoot.

Validation photos choose the checkpoint; test photos only report. Photos of one shoot (same place,
light and clothes) look alike whoever is in them, so a test photo from a training photo's shoot mostly
measures "same shoot": with at least three shoots, test photos are whole shoots that nothing trains on.

Shoots come from EXIF capture times when every photo has one (a gap of more than two hours starts a new
shoot), otherwise from the photos themselves: a colour histogram of everything *but* the face
(background, clothing, light), clustered by average linkage. The face is masked out so that the
shoots are not told apart by the very identity the likeness is meant to learn.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..images import load_image

GROUPS = ("train", "validation", "test")
SHOOT_GAP_HOURS = 2.0
# Average-linkage cut on (1 - histogram intersection). Measured on the bundled sets: within a shoot
# 0.04-0.77 (lisa_debruine's zoom series changes the crop), between lisa's two shoots 0.89-0.98.
SHOOT_DISTANCE = 0.8
MIN_PHOTOS_FOR_TEST = 12


@dataclass
class Splits:
    train: list[Path]
    validation: list[Path]
    test: list[Path]
    shoots: dict[Path, str] = field(default_factory=dict)
    shoot_source: str = "pixels"  # exif | pixels | given
    note: str = ""

    @property
    def test_shares_shoot_with_train(self) -> bool:
        train_shoots = {self.shoots.get(p) for p in self.train}
        return any(self.shoots.get(p) in train_shoots for p in self.test)

    def as_card(self) -> dict:
        return {"splits": {g: [str(Path(p).resolve()) for p in getattr(self, g)] for g in GROUPS},
                "shoots": {Path(p).name: label for p, label in sorted(self.shoots.items())},
                "shoot_source": self.shoot_source, "test_shares_shoot_with_train": self.test_shares_shoot_with_train,
                "split_note": self.note}


def capture_time(path: Path) -> datetime | None:
    """EXIF DateTimeOriginal (or DateTime), if the photo has one."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            stamp = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    except Exception:  # no EXIF is the common case for exported photos: not an error
        return None
    try:
        return datetime.strptime(str(stamp).strip(), "%Y:%m:%d %H:%M:%S") if stamp else None
    except ValueError:
        return None


def background_histogram(path: Path, box: tuple[float, float, float, float] | None) -> np.ndarray:
    """HSV histogram (12 x 4 x 4) of the photo with the head masked out; ``box`` in original pixels."""
    import cv2

    image = load_image(path, max_side=256)
    scale = image.width / image.info.get("original_size", image.size)[0]
    pixels = np.asarray(image)
    mask = np.ones(pixels.shape[:2], np.uint8)
    if box is not None:
        x0, y0, x1, y1 = (v * scale for v in box)
        w, h = x1 - x0, y1 - y0  # the head with hair: above the box more than below
        mask[max(0, int(y0 - 0.4 * h)):int(y1 + 0.1 * h), max(0, int(x0 - 0.2 * w)):int(x1 + 0.2 * w)] = 0
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], mask, [12, 4, 4], [0, 180, 0, 256, 0, 256]).flatten()
    return hist / max(float(hist.sum()), 1.0)


def background_histogram_light(path: Path, box=None) -> np.ndarray:
    """The same 12 x 4 x 4 HSV histogram from Pillow alone (no OpenCV, no face boxes): what a study's design
    check estimates shoots with on a driver that loads no image-processing library. It can differ from the
    split's own (``background_histogram``) in a rare bin; the design check says it is an estimate."""
    image = load_image(path, max_side=256).convert("HSV")
    h, s, v = (np.asarray(channel, dtype=np.int64) for channel in image.split())
    index = (np.minimum(h * 12 // 256, 11) * 16 + np.minimum(s * 4 // 256, 3) * 4 + np.minimum(v * 4 // 256, 3))
    hist = np.bincount(index.ravel(), minlength=192).astype(np.float64)
    return hist / max(float(hist.sum()), 1.0)


def average_linkage(distance: np.ndarray, cut: float) -> list[int]:
    """Cluster labels: merge the two closest clusters (mean pairwise distance) while it is below ``cut``."""
    clusters = [[i] for i in range(len(distance))]
    while len(clusters) > 1:
        best, pair = None, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                mean = float(distance[np.ix_(clusters[a], clusters[b])].mean())
                if best is None or mean < best:
                    best, pair = mean, (a, b)
        if best is None or best >= cut:
            break
        a, b = pair
        clusters[a] += clusters.pop(b)
    labels = [0] * len(distance)
    for label, members in enumerate(sorted(clusters, key=min)):
        for i in members:
            labels[i] = label
    return labels


def find_shoots(files: list[Path], boxes: dict[Path, tuple | None], features=None) -> tuple[dict[Path, str], str]:
    """``({file: shoot label}, source)``: from EXIF times when every photo has one, else from pixels
    (``features``: the histogram function, ``background_histogram`` by default)."""
    times = {p: capture_time(p) for p in files}
    if files and all(times.values()):
        ordered = sorted(files, key=lambda p: times[p])
        labels, shoot = {}, 0
        for previous, current in zip([None, *ordered], ordered, strict=False):
            if previous is not None and (times[current] - times[previous]).total_seconds() > SHOOT_GAP_HOURS * 3600:
                shoot += 1
            labels[current] = f"shoot-{shoot + 1}"
        return labels, "exif"
    features = [(features or background_histogram)(p, boxes.get(p)) for p in files]
    distance = np.array([[1.0 - np.minimum(a, b).sum() for b in features] for a in features])
    labels = average_linkage(distance, SHOOT_DISTANCE)
    return {p: f"shoot-{label + 1}" for p, label in zip(files, labels, strict=True)}, "pixels"


def default_sizes(n: int, validation: int | None, test: int | None) -> tuple[int, int]:
    """Validation: 2 photos from 6 up, 1 from 3 up. Test: none under 12 photos unless asked (a product
    set is too small to give photos away), else 15 % (at least 2)."""
    if validation is None:
        validation = 2 if n >= 6 else 1 if n >= 3 else 0
    if test is None:
        test = 0 if n < MIN_PHOTOS_FOR_TEST else max(2, round(0.15 * n))
    if validation + test >= n:
        raise ConfigError(f"{validation} validation + {test} test photos leave nothing to train on from {n}; "
                          "lower --validation/--test.")
    return validation, test


def split_photos(files: list[Path], shoots: dict[Path, str], validation: int | None = None,
                 test: int | None = None, seed: int = 0, source: str = "pixels") -> Splits:
    """Choose test photos as whole shoots when there are at least two (so no test photo shares a shoot with a
    training photo), else at random with a note; then validation photos. ``seed`` draws both: a study passes
    one split seed for every replicate, so replicates of a person test on the same photos."""
    files = sorted(files)
    n_val, n_test = default_sizes(len(files), validation, test)
    rng = random.Random(seed)
    by_shoot: dict[str, list[Path]] = {}
    for path in files:
        by_shoot.setdefault(shoots.get(path, "shoot-1"), []).append(path)
    test_files: list[Path] = []
    note = ""
    if n_test and len(by_shoot) >= 2:  # whole shoots, smallest first, never the last shoot(s) training needs
        keep = 2 if len(by_shoot) >= 3 else 1
        order = sorted(by_shoot, key=lambda s: (len(by_shoot[s]), rng.random()))
        for shoot in order:
            if len(test_files) >= n_test or len(by_shoot) - len({shoots[p] for p in test_files}) <= keep:
                break
            if len(files) - len(test_files) - len(by_shoot[shoot]) < n_val + 1:
                continue  # this shoot would leave nothing to train on
            test_files += by_shoot[shoot]
    if n_test and not test_files:
        test_files = rng.sample(files, n_test)
        note = (f"the set has {len(by_shoot)} shoot(s): test photos share a shoot with training photos, so "
                "test FaceSim also measures 'same shoot'")
    if not n_test:
        note = (f"no test group: {len(files)} photos (< {MIN_PHOTOS_FOR_TEST}); pass --test N to hold some out, "
                "or score against other photos with --references")
    rest = [p for p in files if p not in test_files]
    validation_files = sorted(rng.sample(rest, min(n_val, len(rest) - 1))) if n_val else []
    train = [p for p in rest if p not in validation_files]
    return Splits(train=train, validation=validation_files, test=sorted(test_files), shoots=dict(shoots),
                  shoot_source=source, note=note)


def read_splits_csv(path: str | Path, files: list[Path]) -> Splits:
    """A user's groups: a CSV with columns file,group (group: train, validation or test)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"splits file {path} not found; give a CSV with columns file,group.")
    by_name = {p.name: p for p in files}
    groups: dict[str, list[Path]] = {g: [] for g in GROUPS}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            name, group = (row.get("file") or "").strip(), (row.get("group") or "").strip()
            if group not in GROUPS:
                raise ConfigError(f"{path}:{line}: group {group!r}; expected train, validation or test.")
            if name not in by_name:
                raise ConfigError(f"{path}:{line}: {name!r} is not one of the usable photos of this set.")
            groups[group].append(by_name[name])
    if not groups["train"]:
        raise ConfigError(f"{path}: no photo in group 'train'.")
    return Splits(train=sorted(groups["train"]), validation=sorted(groups["validation"]),
                  test=sorted(groups["test"]), shoots={}, shoot_source="given")


def make_splits(files: list[Path], boxes: dict[Path, tuple | None], validation: int | None, test: int | None,
                seed: int, splits_csv: str | None = None) -> Splits:
    """The one entry point the trainer uses."""
    if splits_csv:
        splits = read_splits_csv(splits_csv, files)
        splits.shoots, _ = find_shoots(files, boxes)
        splits.shoot_source = "given"
        return splits
    shoots, source = find_shoots(files, boxes)
    return split_photos(files, shoots, validation, test, seed, source)
