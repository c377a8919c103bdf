"""Arms: how an image gets the person's identity, compared on the same protocol.

- ``likeness``: the trained LoRA (DreamBooth-LoRA, as everywhere else in the workbench);
- ``base``: the base model alone, no identity (the floor);
- ``ip-adapter-face``: tuning-free, the IP-Adapter "plus-face" image prompt through diffusers'
  ``load_ip_adapter`` (Ye et al. 2023), conditioned on face crops of the likeness's *training* photos
  (never its test photos);
- ``likeness+ip-adapter-face``: both.

Each arm declares the weights it needs and their licence. Tiny families get an IP-Adapter with random
weights built from config (a tiny CLIP vision encoder and projection) and saved like the real ones, so
the same ``load_ip_adapter`` code path runs offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from .models.architectures.base import IPAdapterWeights

IP_ADAPTER_LICENCE = ("IP-Adapter (h94/IP-Adapter): Apache-2.0 code and weights; its ViT-H image encoder is "
                      "OpenCLIP (MIT).")
FACEID_LICENCE = ("IP-Adapter-FaceID (h94/IP-Adapter-FaceID): non-commercial research only, as the insightface "
                  "ArcFace model whose embeddings it takes.")


TINY_IP_FILE = "ip-adapter_tiny.safetensors"
TINY_FACEID_FILE = "ip-adapter-faceid_tiny.safetensors"


@dataclass(frozen=True)
class Arm:
    name: str
    lora: bool
    ip_adapter: bool
    licence: str = ""
    faceid: bool = False  # the IP-Adapter takes face-recognition embeddings, not face images

    def describe(self, ip_scale: float) -> str:
        kind = "IP-Adapter FaceID" if self.faceid else "IP-Adapter face"
        parts = (["LoRA likeness"] if self.lora else []) + ([f"{kind} x{ip_scale:g}"] if self.ip_adapter else [])
        return " + ".join(parts) or "base model only"


ARMS: dict[str, Arm] = {a.name: a for a in [
    Arm("likeness", lora=True, ip_adapter=False),
    Arm("base", lora=False, ip_adapter=False),
    Arm("ip-adapter-face", lora=False, ip_adapter=True, licence=IP_ADAPTER_LICENCE),
    Arm("likeness+ip-adapter-face", lora=True, ip_adapter=True, licence=IP_ADAPTER_LICENCE),
    Arm("ip-adapter-faceid", lora=False, ip_adapter=True, licence=FACEID_LICENCE, faceid=True),
    Arm("likeness+ip-adapter-faceid", lora=True, ip_adapter=True, licence=FACEID_LICENCE, faceid=True),
]}


def get_arm(name: str) -> Arm:
    if name not in ARMS:
        raise unknown_name("arm", name, ARMS)
    return ARMS[name]


def ip_adapter_weights(family, settings, faceid: bool = False) -> IPAdapterWeights:
    """Where a family's IP-Adapter is: built here for tiny families, the h94 weights otherwise (the
    architecture's ``ip_adapter`` / ``faceid``)."""
    from .models.architectures import get_architecture
    from .models.architectures.base import IPAdapterWeights
    if family.tiny:
        folder = str(ensure_tiny_ip_adapter(family, settings))
        return (IPAdapterWeights(folder, "", TINY_FACEID_FILE, "") if faceid
                else IPAdapterWeights(folder, "", TINY_IP_FILE, "image_encoder"))
    architecture = get_architecture(family.arch)
    weights = architecture.faceid if faceid else architecture.ip_adapter
    if weights is None:
        raise ConfigError(f"no IP-Adapter {'FaceID' if faceid else 'face'} arm for {family.name} ({family.arch}): "
                          "diffusers' IP-Adapter face weights exist for SD1.5 and SDXL.")
    return weights


def ensure_tiny_ip_adapter(family, settings) -> Path:
    """A random-weight IP-Adapter for a tiny family, saved once in the layout of h94/IP-Adapter."""
    target = settings.models / f"{family.name}-ip-adapter"
    if (target / TINY_IP_FILE).is_file() and (target / TINY_FACEID_FILE).is_file():
        return target
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    build_tiny_ip_adapter(family, settings, staging)
    import shutil

    if target.exists():  # an older build without every file: replaced whole
        shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def build_tiny_ip_adapter(family, settings, folder: Path, seed: int = 0) -> Path:
    """image_encoder/ (a CLIPVisionModelWithProjection) and the adapter weights: an ImageProjection
    (4 tokens) and to_k_ip / to_v_ip for every cross-attention of the family's tiny UNet."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from .models import load_pipeline
    from .models.tiny import TINY_CLIP_VISION

    pipe, _ = load_pipeline(family, settings=settings, device="cpu", dtype="float32")
    unet = pipe.unet
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP_VISION)).eval()
    encoder.save_pretrained(folder / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder / "image_encoder")
    cross = unet.config.cross_attention_dim
    embed = TINY_CLIP_VISION["projection_dim"]
    tensors: dict[str, Any] = {"image_proj.proj.weight": torch.randn(cross * 4, embed) * 0.1,
                               "image_proj.proj.bias": torch.zeros(cross * 4),
                               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(unet, name)
        tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.1
        tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.1
        key += 2
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / TINY_IP_FILE))
    # FaceID: a feed-forward projection of a face embedding (the embedded recognizer's 128-d) to 4 tokens
    embed_id, tokens = FACEID_TINY_EMBED, 4
    faceid = {"image_proj.proj.0.weight": torch.randn(embed_id * 2, embed_id) * 0.1,
              "image_proj.proj.0.bias": torch.zeros(embed_id * 2),
              "image_proj.proj.2.weight": torch.randn(cross * tokens, embed_id * 2) * 0.1,
              "image_proj.proj.2.bias": torch.zeros(cross * tokens),
              "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    faceid.update({k: torch.randn(v.shape) * 0.1 for k, v in tensors.items() if k.startswith("ip_adapter.")})
    save_file({k: v.contiguous() for k, v in faceid.items()}, str(folder / TINY_FACEID_FILE))
    return folder


FACEID_TINY_EMBED = 128  # dlib's descriptor size: the tiny FaceID adapter runs on the embedded recognizer


def _hidden_size(unet, name: str) -> int:
    """The channel width of the block an attention processor sits in (as diffusers' loader computes it)."""
    channels = unet.config.block_out_channels
    if name.startswith("mid_block"):
        return channels[-1]
    if name.startswith("up_blocks"):
        return list(reversed(channels))[int(name[len("up_blocks.")])]
    return channels[int(name[len("down_blocks.")])]


def load_ip_adapter(pipe, family, settings, scale: float, faceid: bool = False) -> None:
    """The family's face IP-Adapter into ``pipe`` through diffusers' own loader, at ``scale``."""
    weights = ip_adapter_weights(family, settings, faceid)
    try:
        pipe.load_ip_adapter(weights.source, subfolder=weights.subfolder, weight_name=weights.weight_name,
                             image_encoder_folder=weights.image_encoder_folder or None,
                             local_files_only=not settings.hub_available())
    except (OSError, ValueError) as exc:
        if family.tiny:
            raise
        raise ConfigError(f"IP-Adapter weights {weights.source}/{weights.subfolder}/{weights.weight_name} are not on "
                          f"this machine ({type(exc).__name__}); on a connected machine run `hf download "
                          f"{weights.source} {weights.subfolder}/{weights.weight_name} "
                          f"{weights.image_encoder_folder}/config.json "
                          f"{weights.image_encoder_folder}/model.safetensors` (licence: {IP_ADAPTER_LICENCE})") from exc
    pipe.set_ip_adapter_scale(scale)


def reference_faces(likeness, count: int = 4) -> list:
    """Face crops of the likeness's *training* photos (never the test photos): the image prompt."""
    from .faces import get_analyzer
    from .images import load_image
    from .likeness.prepare import face_crop

    analyzer, crops = get_analyzer(), []
    for path in likeness.split("train"):
        image = load_image(path)
        faces = analyzer.analyze(image)
        if faces:
            crops.append(face_crop(image, faces[0].bbox, (224, 224)))
        if len(crops) == count:
            break
    if not crops:
        raise ConfigError(f"{likeness.path}: no face found in its training photos for the IP-Adapter arm.")
    return crops


def identity_embedding(likeness, family, dtype=None):
    """The FaceID image prompt: the mean normalised face embedding of the *training* photos, as
    ``ip_adapter_image_embeds`` wants it with classifier-free guidance: ``[zeros, embedding]`` (2, 1, D).
    Real FaceID weights take insightface's ArcFace (512-d); the tiny adapter takes dlib's (128-d)."""
    import numpy as np
    import torch

    from .faces import get_analyzer
    from .images import load_image

    analyzer = get_analyzer("dlib" if family.tiny else "insightface")
    embeddings = [faces[0].embedding for path in likeness.split("train")
                  if (faces := analyzer.analyze(load_image(path)))]
    if not embeddings:
        raise ConfigError(f"{likeness.path}: no face found in its training photos for the FaceID arm.")
    mean = np.mean(embeddings, axis=0)
    embedding = torch.from_numpy(mean / np.linalg.norm(mean)).float()[None, None]
    stacked = torch.cat([torch.zeros_like(embedding), embedding])
    return stacked.to(dtype) if dtype is not None else stacked
