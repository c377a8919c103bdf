"""Reference recognizer: ArcFace from an insightface model pack (``buffalo_l``, ``antelopev2``), run
with onnxruntime.

The pack is the directory insightface itself uses, ``~/.insightface/models/<pack>`` (``INSIGHTFACE_HOME``
moves the root), or any directory the user names. Each ``*.onnx`` file is classified by its
input/output signature the way insightface's model zoo does: an SCRFD detector (6/9/10/15 outputs),
an ArcFace recognizer (square input >= 112), and optionally the 68-point 3-D landmark model (192 px
input, 3309 outputs) for pose. Pre/post-processing follows insightface 0.7 (SCRFD anchor decoding,
NMS, 5-point similarity alignment to the 112 px ArcFace template).

Similarity convention: cosine of the 512-d embeddings, as ArcFace is trained; ``distance`` is
``1 - cosine``. The packs are released for non-commercial research only.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import ModelNotAvailable
from .align import ARCFACE_TEMPLATE
from .pose import pose_from_5, pose_from_68
from .types import Face

PACK_URLS = {
    "buffalo_l": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
    "antelopev2": "https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip",
}
LICENCE = ("insightface model packs: non-commercial research use only "
           "(https://github.com/deepinsight/insightface#license); not for a commercial product")
DET_SIZE = (640, 640)
DET_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4
EMBED_BATCH = 64  # faces per ArcFace call


def insightface_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("INSIGHTFACE_HOME") or "~/.insightface").expanduser()


def pack_dir(pack: str = "buffalo_l", root: str | os.PathLike | None = None) -> Path:
    """A pack is either a directory path itself or a name under ``<root>/models``."""
    if Path(pack).expanduser().is_dir():
        return Path(pack).expanduser()
    return insightface_root(root) / "models" / pack


def download_hint(pack: str, target: Path) -> str:
    url = PACK_URLS.get(pack, PACK_URLS["buffalo_l"])
    hint = (f"download it on a connected machine: mkdir -p {target.parent} && cd {target.parent} && "
            f"curl -LO {url} && unzip {Path(url).name} -d {target.name}; or pass --recognizer "
            f"insightface:/path/to/pack.")
    if pack == "antelopev2":  # insightface's own auto-download of this pack has 404ed (insightface#2517)
        hint += (" If that URL answers 404, get antelopev2.zip from a copy you trust and unzip its .onnx files "
                 f"into {target}.")
    return f"{hint} Licence: {LICENCE}"


def _session(path: Path):
    import onnxruntime

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                 if p in onnxruntime.get_available_providers()]
    return onnxruntime.InferenceSession(str(path), providers=providers)


def _normalisation(path: Path, default_std: float) -> tuple[float, float]:
    """insightface's rule: graphs that start with Sub/Mul normalise inside, so feed raw pixels."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = {node.op_type for node in list(graph.node)[:8]}
    return (0.0, 1.0) if {"Sub", "Mul"} <= ops else (127.5, default_std)


def classify(session) -> str | None:
    """detector / recognizer / landmark_3d_68 / None (other pack members: 2d106, genderage, swapper)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape
    if len(outputs) >= 5:
        return "detector"
    if shape[2:4] == [192, 192]:
        return "landmark_3d_68" if outputs[0].shape[-1] == 3309 else None
    if len(inputs) == 1 and isinstance(shape[2], int) and shape[2] == shape[3] and shape[2] >= 112 \
            and shape[2] % 16 == 0:
        return "recognizer"
    return None


def discover(directory: Path, pack: str) -> dict[str, Path]:
    """Map roles to files of a pack directory; a missing detector or recognizer is a clear error."""
    if not directory.is_dir() or not any(directory.glob("*.onnx")):
        raise ModelNotAvailable(f"insightface model pack {pack!r} not found at {directory}; "
                                + download_hint(pack, directory))
    roles: dict[str, Path] = {}
    for path in sorted(directory.glob("*.onnx")):
        try:
            role = classify(_session(path))
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelNotAvailable(f"{path}: onnxruntime cannot open it ({error}); re-download the pack: "
                                    + download_hint(pack, directory)) from error
        if role and role not in roles:
            roles[role] = path
    missing = [r for r in ("detector", "recognizer") if r not in roles]
    if missing:
        raise ModelNotAvailable(f"insightface pack at {directory} has no {' or '.join(missing)} model "
                                f"(found: {', '.join(p.name for p in directory.glob('*.onnx'))}); "
                                + download_hint(pack, directory))
    return roles


def _blob(pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    """HWC RGB uint8 -> NCHW float (insightface feeds RGB: its BGR input plus swapRB)."""
    return ((pixels.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]


def _nms(dets: np.ndarray, threshold: float) -> list[int]:
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = scores.argsort()[::-1], []
    while order.size:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        overlap = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[1:][overlap <= threshold]
    return keep


class SCRFD:
    """SCRFD detector: letterbox to 640, decode per-stride anchor distances, NMS."""

    LAYOUTS = {6: (3, (8, 16, 32), 2, False), 9: (3, (8, 16, 32), 2, True),
               10: (5, (8, 16, 32, 64, 128), 1, False), 15: (5, (8, 16, 32, 64, 128), 1, True)}

    def __init__(self, path: Path, size: tuple[int, int] = DET_SIZE):
        self.session = _session(path)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.fmc, self.strides, self.anchors, self.has_kps = self.LAYOUTS[len(self.output_names)]
        self.mean, self.std = _normalisation(path, 128.0)
        shape = self.session.get_inputs()[0].shape
        self.size = (shape[3], shape[2]) if isinstance(shape[2], int) and isinstance(shape[3], int) else size

    def detect(self, pixels: np.ndarray, threshold: float = DET_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
        """(boxes with score (n, 5), keypoints (n, 5, 2)) in the image's pixel coordinates."""
        height, width = pixels.shape[:2]
        in_w, in_h = self.size
        if height / width > in_h / in_w:
            new_h, new_w = in_h, int(in_h * width / height)
        else:
            new_w, new_h = in_w, int(in_w * height / width)
        scale = new_h / height
        canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(pixels, (new_w, new_h))
        outputs = self.session.run(self.output_names, {self.input_name: _blob(canvas, self.mean, self.std)})
        outputs = [o[0] if o.ndim == 3 else o for o in outputs]
        boxes, scores, points = [], [], []
        for i, stride in enumerate(self.strides):
            grid_h, grid_w = in_h // stride, in_w // stride
            centers = np.stack(np.mgrid[:grid_h, :grid_w][::-1], axis=-1).astype(np.float32).reshape(-1, 2)
            centers = np.repeat(centers * stride, self.anchors, axis=0)
            score = outputs[i].reshape(-1)
            keep = np.where(score >= threshold)[0]
            dist = outputs[i + self.fmc].reshape(-1, 4)[keep] * stride
            c = centers[keep]
            boxes.append(np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1))
            scores.append(score[keep])
            if self.has_kps:
                kps = outputs[i + 2 * self.fmc].reshape(len(score), -1, 2)[keep] * stride
                points.append(c[:, None, :] + kps)
        boxes, scores = np.concatenate(boxes) / scale, np.concatenate(scores)
        points = np.concatenate(points) / scale if self.has_kps else np.zeros((len(boxes), 5, 2), np.float32)
        dets = np.hstack([boxes, scores[:, None]]).astype(np.float32)
        keep = _nms(dets, NMS_THRESHOLD) if len(dets) else []
        return dets[keep], points[keep]


class _SquareInputModel:
    """An ONNX model with one square NCHW input: its session, input name, side and normalisation."""

    default_std = 127.5

    def __init__(self, path: Path):
        self.session = _session(path)
        self.input_name = self.session.get_inputs()[0].name
        self.size = self.session.get_inputs()[0].shape[2]
        self.mean, self.std = _normalisation(path, self.default_std)


class ArcFace(_SquareInputModel):
    """ArcFace recognizer: similarity-align the 5 key points to the template, embed, batch."""

    def align(self, pixels: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        template = ARCFACE_TEMPLATE * (self.size / 112.0)
        matrix, _ = cv2.estimateAffinePartial2D(keypoints.astype(np.float32), template, method=cv2.LMEDS)
        return cv2.warpAffine(pixels, matrix, (self.size, self.size), borderValue=0)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        blob = np.concatenate([_blob(c, self.mean, self.std) for c in crops])
        return self.session.run(None, {self.input_name: blob})[0].reshape(len(crops), -1)


class Landmark68(_SquareInputModel):
    """insightface's 1k3d68: 68 3-D landmarks from a 1.5x face-box crop (used for pose)."""

    default_std = 128.0

    def landmarks(self, pixels: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        (x1, y1, x2, y2), half = bbox[:4], self.size // 2
        scale = self.size / (max(x2 - x1, y2 - y1) * 1.5)
        center_x, center_y = (x1 + x2) / 2, (y1 + y2) / 2
        matrix = np.array([[scale, 0, half - center_x * scale], [0, scale, half - center_y * scale]], np.float32)
        crop = cv2.warpAffine(pixels, matrix, (self.size, self.size), borderValue=0)
        pred = self.session.run(None, {self.input_name: _blob(crop, self.mean, self.std)})[0][0]
        pred = pred.reshape(-1, 3)[-68:, :2]
        pred = (pred + 1) * half
        inverse = cv2.invertAffineTransform(matrix)
        return (pred @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


class InsightFaceAnalyzer:
    name = "insightface-arcface"
    licence = LICENCE

    def __init__(self, pack: str = "buffalo_l", root: str | os.PathLike | None = None):
        directory = pack_dir(pack, root)
        roles = discover(directory, pack)
        self.pack, self.directory = pack, directory
        self.model_files = sorted(directory.glob("*.onnx"))
        self._detector = SCRFD(roles["detector"])
        self._recognizer = ArcFace(roles["recognizer"])
        self._landmarks = Landmark68(roles["landmark_3d_68"]) if "landmark_3d_68" in roles else None
        self.version = f"{directory.name} ({roles['recognizer'].name}, onnxruntime {metadata.version('onnxruntime')})"

    @property
    def runs_on(self) -> str:
        """The onnxruntime providers the recognizer got: a GPU box with the CPU-only package says so."""
        providers = self._recognizer.session.get_providers()
        hint = "" if "CUDAExecutionProvider" in providers else (
            " (on a GPU box: pip uninstall -y onnxruntime && pip install onnxruntime-gpu)")
        return "onnxruntime " + ", ".join(providers) + hint

    def analyze(self, image: Image.Image) -> list[Face]:
        return self.analyze_many([image])[0]

    def analyze_many(self, images: list[Image.Image]) -> list[list[Face]]:
        """Detect per image, then embed every face of every image in one recognizer batch."""
        found = []
        for index, image in enumerate(images):
            pixels = np.asarray(image.convert("RGB"))
            dets, points = self._detector.detect(pixels)
            found += [(index, pixels, det, kps) for det, kps in zip(dets, points, strict=True)]
        results: list[list[Face]] = [[] for _ in images]
        if not found:
            return results
        crops = [self._recognizer.align(px, kps) for _, px, _, kps in found]
        # recognizer batches of EMBED_BATCH: one call per batch, memory bounded however many faces a set has
        embeddings = [e for i in range(0, len(crops), EMBED_BATCH)
                      for e in self._recognizer.embed(crops[i:i + EMBED_BATCH])]
        for (index, pixels, det, kps), raw in zip(found, embeddings, strict=True):
            landmarks = self._landmarks.landmarks(pixels, det) if self._landmarks else None
            size = (pixels.shape[1], pixels.shape[0])
            yaw, pitch, roll = pose_from_68(landmarks, size) if landmarks is not None else pose_from_5(kps, size)
            results[index].append(Face(
                bbox=tuple(float(v) for v in det[:4]), keypoints=kps.astype(np.float32), det_score=float(det[4]),
                embedding=raw / max(np.linalg.norm(raw), 1e-12), recognizer=f"{self.name} ({self.version})",
                yaw=yaw, pitch=pitch, roll=roll, landmarks=landmarks, descriptor=raw, detector="scrfd"))
        for faces in results:
            faces.sort(key=lambda f: f.area, reverse=True)
        return results

    def similarity(self, a: Face, b: Face) -> float:
        return float(np.dot(a.embedding, b.embedding) / (np.linalg.norm(a.embedding) * np.linalg.norm(b.embedding)))

    def distance(self, a: Face, b: Face) -> float:
        return 1.0 - self.similarity(a, b)
