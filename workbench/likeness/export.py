"""Export a likeness LoRA from diffusers format to the kohya / A1111 key format that ComfyUI,
AUTOMATIC1111, SD.Next and InvokeAI load (``lora_unet_<module>.lora_down.weight`` + ``.alpha``).

SD and SDXL only: FLUX LoRAs in diffusers format (``transformer.*.lora_A``) load in ComfyUI as they
are, and kohya's FLUX naming follows BFL's fused-qkv layout, which a key rename cannot produce.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def canonical_safetensors(path: str | os.PathLike) -> Path:
    """Rewrite a .safetensors header with sorted keys: safetensors writes its header from a hash map, so
    identical tensors gave different bytes and checksums could not show reproducibility. The data
    section is untouched (its offsets are relative to it); the header stays padded to 8 bytes."""
    from ..store import atomic_write_bytes

    path = Path(path)
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    atomic_write_bytes(path, len(text).to_bytes(8, "little") + text + raw[8 + size:])
    return path


def kohya_base_version(family) -> str | None:
    """kohya's ``ss_base_model_version`` for the family's architecture; None: no kohya-format export."""
    from ..models.architectures import get_architecture

    return get_architecture(family.arch).kohya_base_version


def _alphas(metadata: dict[str, str]) -> dict[str, float]:
    """LoRA alpha per owner (unet / text_encoder / text_encoder_2) from the diffusers file's
    ``lora_adapter_metadata`` (flattened ``<owner>.lora_alpha`` keys)."""
    config = json.loads(metadata.get("lora_adapter_metadata", "{}"))
    return {key.removesuffix(".lora_alpha"): float(value) for key, value in config.items()
            if key.endswith(".lora_alpha") and value is not None}


PREFIXES = {"unet": "lora_unet", "text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}
SUFFIXES = {"lora_linear_layer.down.weight": "lora_down.weight", "lora_linear_layer.up.weight": "lora_up.weight",
            "lora.down.weight": "lora_down.weight", "lora_A.weight": "lora_down.weight",
            "lora.up.weight": "lora_up.weight", "lora_B.weight": "lora_up.weight"}


def to_kohya(state: dict[str, torch.Tensor], alphas: dict[str, float]) -> dict[str, torch.Tensor]:
    """``unet.down_blocks.0.attentions.0....to_q.lora.down.weight`` ->
    ``lora_unet_down_blocks_0_attentions_0_..._to_q.lora_down.weight`` (+ ``.alpha``), the naming
    kohya's sd-scripts writes and ComfyUI/A1111 map back onto diffusers modules."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        owner, _, rest = key.partition(".")
        suffix = next((s for s in SUFFIXES if rest.endswith(s)), None)
        if owner not in PREFIXES or suffix is None:
            raise ValueError(f"unexpected LoRA key {key!r}: not a unet/text-encoder LoRA weight")
        path = rest[:-len(suffix) - 1]
        if owner.startswith("text_encoder") and not path.startswith("text_model."):
            path = "text_model." + path  # kohya names CLIP modules from the CLIPTextModel root
        module = f"{PREFIXES[owner]}_{path.replace('.', '_')}"
        out[f"{module}.{SUFFIXES[suffix]}"] = tensor
        if SUFFIXES[suffix] == "lora_down.weight":
            out[f"{module}.alpha"] = torch.tensor(float(alphas.get(owner, tensor.shape[0])))
    return out


def export_kohya(lora_file: str | os.PathLike, target: str | os.PathLike, family, config=None) -> Path:
    """Write ``target`` (safetensors, kohya keys, alpha per module, ``ss_*`` metadata)."""
    with safe_open(str(lora_file), "pt") as handle:
        state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
        metadata = handle.metadata() or {}
    alphas = _alphas(metadata)
    kohya = to_kohya(state, alphas)
    ranks = {int(v.shape[0]) for k, v in kohya.items() if k.endswith("lora_down.weight")}
    info = {"ss_network_module": "networks.lora", "ss_base_model_version": kohya_base_version(family),
            "ss_network_dim": str(max(ranks)), "ss_network_alpha": str(alphas.get("unet", max(ranks))),
            "ss_output_name": Path(target).stem, "workbench_family": family.name,
            "ss_training_comment": f"likeness LoRA, trigger '{config.token} {config.class_word}'" if config else ""}
    target = Path(target)
    scratch = target.with_name(f".{target.name}.tmp")
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(scratch), metadata=info)
    canonical_safetensors(scratch)
    os.replace(scratch, target)
    return target
