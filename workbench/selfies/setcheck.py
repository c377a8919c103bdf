"""Whole-set checks: count, near-duplicates, identity consistency, pose coverage, and the verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from .photo import PhotoCheck
from .thresholds import Thresholds


def _groups(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    return [sorted(g) for g in members.values() if len(g) > 1]


def find_duplicates(photos: list[PhotoCheck], analyzer, limits: Thresholds) -> list[list[str]]:
    """Groups of near-identical photos; every member after the first is flagged ``duplicate``."""
    readable = [p for p in photos if p.phash is not None]
    hashes = [p.phash for p in readable]
    pairs = []
    for i in range(len(readable)):
        for j in range(i + 1, len(readable)):
            distance = hashes[i] - hashes[j]
            close = distance <= limits.duplicate_phash
            a, b = readable[i].subject, readable[j].subject
            if not close and a is not None and b is not None and distance <= limits.duplicate_phash_loose:
                close = analyzer.similarity(a, b) >= limits.duplicate_facesim
            if close:
                pairs.append((i, j))
    groups = [[readable[i].file for i in group] for group in _groups(len(readable), pairs)]
    by_name = {p.file: p for p in photos}
    for group in groups:
        for name in group[1:]:
            by_name[name].flag("duplicate", f"Nearly the same as {group[0]}; near-copies add nothing. Replace it "
                               "with a photo in another place, light or expression.")
    return groups


def find_intruders(photos: list[PhotoCheck], analyzer, limits: Thresholds) -> list[dict[str, Any]]:
    """Photos whose subject is probably someone else: median similarity to the other subjects."""
    # Faces only the profile-capable CNN found carry unreliable landmarks, so their embeddings are not
    # comparable with frontal ones: they neither vote on the consensus nor get called someone else.
    faced = [p for p in photos if p.subject is not None and p.subject.pose_reliable]
    if len(faced) < 3:
        return []
    sims = np.array([[analyzer.similarity(a.subject, b.subject) if a is not b else np.nan for b in faced]
                     for a in faced])
    intruders = []
    for photo, row in zip(faced, sims, strict=True):
        score = float(np.nanmedian(row))
        photo.scores["identity_consistency"] = score
        if score < limits.different_person_below:
            photo.flag("different_person", f"This looks like a different person (similarity {score:.2f} to the "
                       "rest of the set); remove it unless it really is you.")
            intruders.append({"file": photo.file, "score": score})
    return intruders


def pose_coverage(photos: list[PhotoCheck]) -> dict[str, Any]:
    """Counts of faces turned left / frontal / right and looking up / level / down, with advice."""
    posed = [p.subject for p in photos if p.subject is not None and p.status != "fail"]
    yaws = [f.yaw for f in posed if np.isfinite(f.yaw)]  # NaN: pose unknown (profile found by the CNN)
    pitches = [f.pitch for f in posed if np.isfinite(f.pitch)]
    coverage = {
        "turned_image_left": sum(y < -15 for y in yaws), "frontal": sum(-15 <= y <= 15 for y in yaws),
        "turned_image_right": sum(y > 15 for y in yaws),
        "yaw_histogram": np.histogram(yaws, bins=[-90, -45, -15, 15, 45, 90])[0].tolist() if yaws else [],
        "pitch_histogram": np.histogram(pitches, bins=[-90, -20, 20, 90])[0].tolist() if pitches else [],
    }
    advice = []
    # The person's left is the image's right in a selfie that is not mirrored.
    # A three-quarter view (15-45 degrees) is asked for; a card flags a head turned past the warn angle.
    if coverage["turned_image_right"] < 2:
        advice.append(f"Add {2 - coverage['turned_image_right']} photo(s) in a three-quarter view to your left "
                      "(head turned a little, both eyes still visible; not a profile).")
    if coverage["turned_image_left"] < 2:
        advice.append(f"Add {2 - coverage['turned_image_left']} photo(s) in a three-quarter view to your right "
                      "(head turned a little, both eyes still visible; not a profile).")
    if coverage["frontal"] < 3:
        advice.append(f"Add {3 - coverage['frontal']} photo(s) looking straight at the camera.")
    coverage["advice"] = advice
    return coverage


def variety(photos: list[PhotoCheck], limits: Thresholds) -> dict[str, Any]:
    """Expression variety (smiling vs neutral, from mouth width) and lighting variety (spread of face
    brightness and of left/right light balance), each with advice when the set is all one kind."""
    usable = [p for p in photos if p.status != "fail" and "mouth_width" in p.scores]
    smiling = sum(p.scores["mouth_width"] > limits.smile_width_above for p in usable)
    brightness = [p.scores["brightness"] for p in photos if p.status != "fail" and "brightness" in p.scores]
    spread = float(np.ptp(brightness)) if len(brightness) > 1 else 0.0
    advice = []
    if len(usable) >= 5 and smiling == 0:
        advice.append("Every photo has the same neutral expression; add 2-3 where you smile.")
    elif len(usable) >= 5 and smiling == len(usable):
        advice.append("You smile in every photo; add 2-3 with a relaxed, neutral expression.")
    if len(brightness) >= 5 and spread < 20:
        advice.append("All photos have the same light; add some in daylight, indoors and in the shade.")
    return {"smiling": smiling, "neutral": len(usable) - smiling, "brightness_spread": spread, "advice": advice}


def verdict(photos: list[PhotoCheck], limits: Thresholds) -> tuple[str, list[str], list[str]]:
    """(verdict, training files, advice). Training uses every photo that did not fail and is not a
    duplicate of an earlier one."""
    usable = [p.file for p in photos if p.status != "fail" and "duplicate" not in p.flags]
    advice = []
    real = [p for p in photos if "unreadable" not in p.flags]  # a PDF or a link beside the photos is no photo
    others = len(photos) - len(real)
    if len(real) < limits.min_photos:
        advice.append(f"Only {len(real)} photos: add {limits.min_photos - len(real)} more (10-30 works best).")
    elif len(real) > limits.max_photos:
        advice.append(f"{len(real)} photos: more than {limits.max_photos} adds training time, not likeness.")
    if others:
        advice.append(f"{others} file(s) are not photos and are left out; see their cards.")
    failed = len([p for p in real if p.status == "fail"])
    if failed:
        advice.append(f"{failed} photo(s) cannot be used; see each photo's advice.")
    if len(usable) < max(3, limits.min_photos // 2):
        return "not_ready", usable, advice
    if len(usable) < limits.min_photos or any(p.flags for p in photos):
        return "usable_with_warnings", usable, advice
    return "ready", usable, advice
