"""Loading a family's pipeline from a tiny build, a hub id, a local diffusers directory or a single
``.safetensors`` file — with one clear error when the weights are not here and cannot be fetched."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import Settings, torch_dtype
from ..errors import ConfigError, ModelNotAvailable
from .architectures import get_architecture
from .families import Family, get_family
from .tiny import build_tiny_pipeline


@dataclass(frozen=True)
class ModelSource:
    """Where a pipeline's weights come from; recorded in every manifest."""

    family: str
    kind: str  # tiny | hub | local | single_file
    location: str
    licence: str
    tiny: bool  # random weights (a tiny or a real-size random family): images are noise
    revision: str | None = None  # the hub commit, or a hash of a local directory's configs (after loading)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_source(family: Family | str, base: str | None, settings: Settings) -> ModelSource:
    family = get_family(family) if isinstance(family, str) else family
    if base is None:
        if family.tiny:
            location = str(settings.models / family.name)
            return ModelSource(family.name, "tiny", location, family.licence, True)
        if family.realsize:
            return ModelSource(family.name, "random", f"{family.name} (built in memory)", family.licence, True)
        base = family.hub_id
    path = Path(os.path.expanduser(str(base)))
    if path.is_dir():
        return ModelSource(family.name, "local", str(path.resolve()), family.licence, family.random_weights)
    if path.suffix in {".safetensors", ".ckpt"}:
        if not path.is_file():
            raise ModelNotAvailable(f"{path}: no such checkpoint file. Check the --base path.")
        return ModelSource(family.name, "single_file", str(path.resolve()), family.licence,
                            family.random_weights)
    if str(base).startswith((".", "/", "~")):
        raise ModelNotAvailable(f"{base}: no such directory. Point --base at a diffusers model directory "
                                "(with model_index.json) or a .safetensors file.")
    return ModelSource(family.name, "hub", str(base), family.licence, family.random_weights)


def ensure_tiny(family: Family, settings: Settings) -> Path:
    """Build the tiny family once and cache it; the cache appears whole or not at all."""
    target = settings.models / family.name
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{family.name}."))
    try:
        build_tiny_pipeline(family).save_pretrained(staging)
        if target.exists():  # a concurrent builder won; keep theirs
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def download_command(repo: str, name: str) -> str:
    """The download command of the pinned hub client (huggingface_hub >= 1.0 ships ``hf``, not
    ``huggingface-cli``)."""
    return f"hf download {repo} --local-dir /models/{name}"


def _not_available(family: Family, source: ModelSource, cause: Exception) -> ModelNotAvailable:
    repo = source.location
    return ModelNotAvailable(
        f"weights for family {family.name!r} ({repo}) are not on this machine and could not be "
        f"downloaded ({type(cause).__name__}). On a machine with internet run "
        f"`{download_command(repo, family.name)}` (accept the licence on the "
        f"hub first: {family.licence}), then pass `--base /models/{family.name}`. HF_HUB_OFFLINE=1 makes "
        "the workbench use only local files.")


def quantization_config(family: Family, source: ModelSource, quantize: str, dtype) -> Any:
    """A 4-bit NF4 denoiser (QLoRA, as in diffusers' FLUX QLoRA recipe) through diffusers' bitsandbytes
    backend: quantized while the weights load, so only weights on disk can be quantized."""
    if quantize != "nf4":
        raise ConfigError(f"quantize {quantize!r}: expected nf4.")
    if source.kind in ("tiny", "random"):
        raise ConfigError(f"{family.name} is built in memory; a quantized base needs weights on disk. Use "
                          "--memory balanced (or full) with this family.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError("a 4-bit base needs bitsandbytes and a CUDA GPU: `pip install bitsandbytes`, or pass "
                          "--memory balanced.") from exc
    from diffusers.quantizers import PipelineQuantizationConfig

    return PipelineQuantizationConfig(
        quant_backend="bitsandbytes_4bit", components_to_quantize=[get_architecture(family.arch).denoiser],
        quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype})


def ensure_available(family: Family | str, base: str | None, settings: Settings) -> ModelSource:
    """Fail fast (before a 30 s selfie check) when a family's weights are neither here nor fetchable."""
    family = get_family(family) if isinstance(family, str) else family
    source = resolve_source(family, base, settings)
    if source.kind == "local" and not (Path(source.location) / "model_index.json").is_file():
        raise ModelNotAvailable(f"{source.location}: not a diffusers model directory (no model_index.json). "
                                f"Download one with `hf download {family.hub_id} --local-dir {source.location}`.")
    if source.kind == "hub" and not settings.hub_available():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(source.location, "model_index.json")
        except Exception:  # a broken cache is "not here"
            cached = None
        if not isinstance(cached, str):
            raise _not_available(family, source, ConnectionError("offline and not in the local cache"))
    return source


def load_pipeline(family: Family | str, base: str | None = None, settings: Settings | None = None,
                  device: str | None = None, dtype: str | None = None,
                  quantize: str | None = None) -> tuple[Any, ModelSource]:
    """Return ``(pipeline, source)`` on ``device``/``dtype`` (defaults from settings); ``quantize="nf4"``
    loads the denoiser in 4 bits (the low-memory tier for FLUX)."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()  # our own bars say what is happening
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()  # tiny tokenizers truncate long prompts: expected
    transformers.utils.logging.set_verbosity_error()
    settings = settings or Settings()
    family = get_family(family) if isinstance(family, str) else family
    source = resolve_source(family, base, settings)
    device = device or settings.resolved_device()
    on_gpu = device.startswith("cuda")
    dtype = dtype or (family.gpu_dtype if on_gpu and not settings.dtype else settings.resolved_dtype())
    pipeline_class = getattr(diffusers, family.pipeline_class)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    kwargs.update(get_architecture(family.arch).load_kwargs)
    if quantize:
        kwargs["quantization_config"] = quantization_config(family, source, quantize, kwargs["dtype"])
    if source.kind == "tiny":
        location = ensure_tiny(family, settings)
        pipe = pipeline_class.from_pretrained(location, **kwargs)
    elif source.kind == "random":
        from .realsize import build_realsize_pipeline

        pipe = build_realsize_pipeline(family, device=device, dtype=kwargs["dtype"])
    elif source.kind == "local":
        if not (Path(source.location) / "model_index.json").is_file():
            raise ModelNotAvailable(f"{source.location}: not a diffusers model directory (no model_index.json). "
                                    f"Download one with `hf download {family.hub_id} --local-dir "
                                    f"{source.location}`.")
        pipe = pipeline_class.from_pretrained(source.location, **kwargs)
    elif source.kind == "single_file":
        try:
            pipe = pipeline_class.from_single_file(source.location, **kwargs)
        except (OSError, ValueError) as exc:
            raise _not_available(family, source, exc) from exc
    else:
        try:
            pipe = pipeline_class.from_pretrained(source.location, local_files_only=not settings.hub_available(),
                                                  **kwargs)
        except (OSError, ValueError) as exc:
            raise _not_available(family, source, exc) from exc
    pipe.set_progress_bar_config(disable=True)
    source = replace(source, revision=resolved_revision(pipe, source))
    return pipe.to(device), source


def resolved_revision(pipe, source: ModelSource) -> str | None:
    """What exactly was loaded: the hub snapshot's commit (from the cache path), or a sha256 over a local
    directory's config files, or the file's size and mtime for a single checkpoint; tiny and random
    families are their config and seed (the family name says it)."""
    import hashlib

    if source.kind == "hub":
        path = Path(str(getattr(pipe, "name_or_path", "") or pipe.config.get("_name_or_path", "")))
        parts = path.parts
        return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None
    if source.kind in ("local", "tiny"):
        root = Path(source.location)
        digest = hashlib.sha256()
        for config in sorted([root / "model_index.json", *root.glob("*/config.json")]):
            if config.is_file():
                digest.update(config.relative_to(root).as_posix().encode() + config.read_bytes())
        return "configs-sha256:" + digest.hexdigest()[:16]
    if source.kind == "single_file":
        stat = Path(source.location).stat()
        return f"file:{stat.st_size}:{int(stat.st_mtime)}"
    return None


def weights_status(family: Family, settings: Settings) -> str:
    """Where a family's weights are, for ``workbench models`` (never downloads)."""
    if family.tiny:
        cached = settings.models / family.name / "model_index.json"
        return f"built at {cached.parent}" if cached.is_file() else "built on first use (seconds, no download)"
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(family.hub_id, "model_index.json")
    except Exception:  # a broken cache is "not found", not a crash
        hit = None
    if isinstance(hit, str):
        return f"in the HF cache ({Path(hit).parent})"
    if family.realsize:
        return "built in memory on use (real size, random weights, no download)"
    return f"not downloaded: `{download_command(family.hub_id, family.name)}` or pass --base DIR"
