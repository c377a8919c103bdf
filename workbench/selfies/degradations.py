"""The degradations an upload-quality study applies, by name, with what each one's ``strength`` means. Data
only (the code is in ``degrade.py``), so help texts and spec checks list them without loading image code."""

KINDS = {
    "blur": "Gaussian sigma in px per 256 px of face (or of the short side when no face is found)",
    "darken": "stops of under-exposure (each halves the light, with a gamma so shadows crush)",
    "overexpose": "stops of over-exposure (clipped at white)",
    "noise": "Gaussian noise std in 8-bit levels / 10 (strength 3 = std 30)",
    "jpeg": "quality = 100 - 20 x strength (strength 3.5 = quality 30)",
    "downscale": "divide each side by 2**strength, then scale back up",
    "beauty": "skin smoothing: blend of a 0.05-face-size blur into the skin, alpha = strength / 3",
    "occlusion": "dark sunglasses-like lenses over the eyes; strength scales the lenses (1 = 0.84 x eye distance wide)",
    "duplicates": "add round(strength) near-copies of photos (1 px shift, slight crop and tone change)",
    "intruder": "replace round(strength) photos with photos of someone else (needs ``others``)",
    "fewer": "keep only round(strength) photos",
}
PER_PHOTO = {"blur", "darken", "overexpose", "noise", "jpeg", "downscale", "beauty", "occlusion"}
# The strengths a degradation may take (beyond them the photo is destroyed or nothing changes).
STRENGTH_RANGE = {"blur": (0.0, 20.0), "darken": (0.0, 6.0), "overexpose": (0.0, 6.0), "noise": (0.0, 10.0),
                  "jpeg": (0.0, 4.95), "downscale": (0.0, 6.0), "beauty": (0.0, 3.0), "occlusion": (0.0, 3.0),
                  "duplicates": (0.0, 100.0), "intruder": (0.0, 100.0), "fewer": (1.0, 1000.0)}


def describe() -> str:
    """``kind low-high: what a unit means; ...`` for help texts."""
    return "; ".join(f"{kind} {STRENGTH_RANGE[kind][0]:g}-{STRENGTH_RANGE[kind][1]:g}: {unit}"
                     for kind, unit in KINDS.items())
