"""Checkpoints of a training: written whole (staged, then renamed into place), checked against what a resume
asks for, and loaded to resume exactly where the training stopped.

A checkpoint folder ``checkpoints/step-NNNNNN/`` holds the LoRA in diffusers format (what the probes and a
person load), the settings its weights were trained with (``train_config.json``) and the resume state
(``trainer_state.pt``: the LoRA in peft's keys, optimizer, schedule, curve and losses).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ArtifactError, ConfigError
from .config import TrainConfig
from .export import canonical_safetensors

LORA_FILE = "lora.safetensors"


STATE_FILE = "trainer_state.pt"


CONFIG_FILE = "train_config.json"


# Settings that change only memory or speed, not what a step trains: a run may resume with others (after
# running out of memory, say). Every other setting must match the checkpoints it resumes.
RESUMABLE_CHANGES = frozenset({"memory", "gradient_checkpointing", "vae", "compile", "attention", "log_with",
                               "lean_lora"})


def save_checkpoint(out: Path, pipe, adapter, optimizer, schedule, step: int, curve: list, losses: list,
                    encoders: list | None = None, config=None) -> Path:
    """Adapter (safetensors, diffusers format, with its LoRA config as metadata so alpha survives) +
    resume state, appearing atomically as one folder."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    encoders = encoders or []
    peft_state = get_peft_model_state_dict(adapter.denoiser)
    encoder_states = [get_peft_model_state_dict(e) for e in encoders]
    layers = {adapter.lora_owner_kwarg(): adapter.lora_state_to_save(peft_state, convert_state_dict_to_diffusers)}
    metadata = {adapter.lora_owner_kwarg().replace("_layers", "_adapter_metadata"):
                adapter.denoiser.peft_config["default"].to_dict()}
    for kwarg, encoder, state in zip(adapter.text_encoder_lora_kwargs(), encoders, encoder_states, strict=False):
        layers[kwarg] = convert_state_dict_to_diffusers(state)
        metadata[kwarg.replace("_layers", "_adapter_metadata")] = encoder.peft_config["default"].to_dict()
    target = out / "checkpoints" / f"step-{step:06d}"
    staging = out / "checkpoints" / f".step-{step:06d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if config is not None:  # what these weights were trained with: a resume must match it (check_resumable)
        (staging / CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=1, sort_keys=True))
    type(pipe).save_lora_weights(staging, **layers, **_jsonable(metadata), weight_name=LORA_FILE,
                                 safe_serialization=True)
    canonical_safetensors(staging / LORA_FILE)
    torch.save({"step": step, "lora": {k: v.detach().cpu() for k, v in peft_state.items()},
                "text_encoders": [{k: v.detach().cpu() for k, v in st.items()} for st in encoder_states],
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "curve": curve,
                "losses": losses}, staging / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _jsonable(metadata: dict[str, dict]) -> dict[str, dict]:
    """peft configs hold sets and enums; safetensors metadata must be JSON."""
    import json

    return {k: json.loads(json.dumps(v, default=lambda o: sorted(o) if isinstance(o, set) else str(o)))
            for k, v in metadata.items()}


def last_checkpoint(out: Path) -> int | None:
    """The step of the newest complete checkpoint (one with its resume state), if any."""
    done = sorted((out / "checkpoints").glob("step-*/" + STATE_FILE)) if (out / "checkpoints").is_dir() else []
    return int(done[-1].parent.name.removeprefix("step-")) if done else None


def saved_config(out: Path) -> dict[str, Any] | None:
    """The settings the newest checkpoint was trained with (None: no checkpoint, or one older than the record)."""
    step = last_checkpoint(out)
    saved = out / "checkpoints" / f"step-{step:06d}" / CONFIG_FILE if step else None
    if saved is None or not saved.is_file():
        return None
    try:
        config = json.loads(saved.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a mapping")
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged_checkpoint(saved, exc) from None
    return config


def damaged_checkpoint(path: Path, exc: BaseException) -> ArtifactError:
    return ArtifactError(f"{path}: damaged ({type(exc).__name__}); remove the folder {path.parent.name} to resume from "
                         "the checkpoint before it, or retrain with --replace.")


def check_resumable(out: Path, config: TrainConfig, photos: dict[str, str] | None = None,
                    trained_on: dict[str, str] | None = None) -> None:
    """Refuse to resume checkpoints trained with other settings or other photos (another rank fails deep in
    peft; another learning rate, batch or selfie set would silently mix two trainings in one LoRA). Memory
    settings may change. Photos compare by content: a moved folder still resumes."""
    saved = saved_config(out)
    if saved is None:
        return
    step, asked = last_checkpoint(out), config.model_dump(mode="json")
    if photos is not None and trained_on is not None and sorted(photos.values()) != sorted(trained_on.values()):
        added, gone = set(photos.values()) - set(trained_on.values()), set(trained_on.values()) - set(photos.values())
        raise ConfigError(f"{out} has checkpoints up to step {step} trained on other photos ({len(added)} new or "
                          f"changed, {len(gone)} gone since); train into a new --out, or restore the photos.")
    changed = sorted(k for k in saved.keys() | asked.keys()
                     if k not in RESUMABLE_CHANGES and saved.get(k) != asked.get(k))
    if changed:
        was = ", ".join(f"{k} {saved.get(k)!r}" for k in changed)
        now = ", ".join(f"{k} {asked.get(k)!r}" for k in changed)
        raise ConfigError(f"{out} has checkpoints up to step {step} trained with {was}; this run asks for {now}. "
                          "Resume with the same settings (memory settings may change), or train into a new --out.")


def resume(out: Path, denoiser, optimizer, schedule, encoders: list | None = None) -> tuple[int, list, list]:
    """Load the newest complete checkpoint, if any: (next step, curve so far, losses so far)."""
    from peft import set_peft_model_state_dict

    step = last_checkpoint(out)
    if step is None:
        return 0, [], []
    state_file = out / "checkpoints" / f"step-{step:06d}" / STATE_FILE
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        set_peft_model_state_dict(denoiser, state["lora"])
        for encoder, encoder_state in zip(encoders or [], state.get("text_encoders", []), strict=False):
            set_peft_model_state_dict(encoder, encoder_state)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        curve, losses, step = list(state["curve"]), list(state["losses"]), int(state["step"])
    except Exception as exc:  # noqa: BLE001 - torch.load and load_state_dict raise many types for a bad file
        raise damaged_checkpoint(state_file, exc) from None
    print(f"resuming from {state_file.parent.name}")
    return step, curve, losses
