"""LoRAs on top of a model's weights: read from disk or the local Hugging Face cache only.

Each ``[[engines.X.lora]]`` names a ``.safetensors`` file, a directory or a hub id (with
``weight_name`` for the file inside), a ``scale`` and the transformer it goes into:
``transformer``, or ``transformer_2`` for Wan 2.2 A14B's low-noise expert (diffusers'
``load_into_transformer_2``). A hub id is looked up in the local cache and never fetched:
kinema downloads nothing while serving (docs/gpu.md has the download commands).

With ``lora_fuse = true`` (the default) the LoRAs are merged into the weights once after
loading and the adapter layers removed, so a step costs what it costs without them.

LoRAs in the original Wan layout (LightX2V's Lightning files: ``diffusion_model.`` or
``model.diffusion_model.`` + Wan's own module names + ``.lora_down``/``.lora_up``/``.alpha``,
in float32, covering ``head.head``, ``time_projection`` and the text and time embeddings as
well as the blocks) are normalised first, as LightX2V's own loader does: the prefix made
``diffusion_model.``, each ``alpha / rank`` folded into its ``lora_up``, the ``alpha`` keys
dropped and the tensors cast to the model's dtype. diffusers' converter applies ``alpha``
inside the blocks only and raises on the others (and on the longer prefix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kinema.engines.diffusion.options import DiffusionOptions, LoraSpec
from kinema.errors import EngineError


def load(pipe: Any, options: DiffusionOptions, engine: str) -> None:
    """Load ``options.lora`` into the pipeline, set their scales, and fuse them."""
    if not options.lora:
        return
    if not hasattr(pipe, "load_lora_weights"):
        raise EngineError(f"engine {engine}: {type(pipe).__name__} cannot load LoRAs")
    names: dict[str, list[str]] = {}
    scales: dict[str, list[float]] = {}
    for index, spec in enumerate(options.lora):
        if getattr(pipe, spec.transformer, None) is None:
            raise EngineError(
                f"engine {engine}: lora {spec.weights}: the model has no {spec.transformer}"
            )
        name = f"lora{index}"
        extra = {"load_into_transformer_2": True} if spec.transformer == "transformer_2" else {}
        try:
            state = normalise_wan_layout(_state_dict(spec, engine), _dtype_of(pipe, spec))
            pipe.load_lora_weights(state, adapter_name=name, **extra)
        except (ValueError, KeyError, RuntimeError, ImportError) as error:
            raise EngineError(
                f"engine {engine}: cannot load lora {spec.weights}: {error}"
            ) from None
        names.setdefault(spec.transformer, []).append(name)
        scales.setdefault(spec.transformer, []).append(spec.scale)
    for target, adapters in names.items():
        getattr(pipe, target).set_adapters(adapters, weights=scales[target])
    if options.lora_fuse:
        for target, adapters in names.items():
            getattr(pipe, target).fuse_lora(adapter_names=adapters)
        for target in names:
            getattr(pipe, target).unload_lora()  # the adapters' layers; the fused weights stay


def resolve(spec: LoraSpec, engine: str) -> Path:
    """The LoRA's ``.safetensors`` file on this machine."""
    path = Path(spec.weights).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return _inside(path, spec, engine)
    if spec.weights.startswith(("/", ".", "~")):
        raise EngineError(f"engine {engine}: no lora file or directory at {spec.weights}")
    if spec.weight_name is None:
        raise EngineError(
            f"engine {engine}: lora {spec.weights} is a hub id: give weight_name, the "
            ".safetensors file inside it"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(spec.weights, spec.weight_name, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        raise EngineError(
            f"engine {engine}: lora {spec.weights}/{spec.weight_name} is not in the local "
            f"Hugging Face cache and kinema downloads nothing while serving; fetch it first: "
            f"hf download {spec.weights} {spec.weight_name}"
        ) from None


def _inside(directory: Path, spec: LoraSpec, engine: str) -> Path:
    if spec.weight_name:
        path = directory / spec.weight_name
        if not path.is_file():
            raise EngineError(f"engine {engine}: no lora file {spec.weight_name} in {directory}")
        return path
    found = sorted(directory.glob("*.safetensors"))
    if len(found) != 1:
        raise EngineError(
            f"engine {engine}: {directory} holds {len(found)} .safetensors files; name one "
            "with weight_name"
        )
    return found[0]


def _state_dict(spec: LoraSpec, engine: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    return dict(load_file(str(resolve(spec, engine))))


_WAN_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def normalise_wan_layout(
    state: dict[str, torch.Tensor], dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """A LoRA in the original Wan layout, made loadable by diffusers with its scale kept:
    ``diffusion_model.`` prefix, ``alpha / rank`` folded into ``lora_up``, no ``alpha``
    keys, ``dtype`` tensors. Other layouts (peft, diffusers) come back unchanged."""
    if not any(key.startswith(_WAN_PREFIXES) for key in state):
        return state
    stripped = {_strip(key): tensor for key, tensor in state.items()}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in stripped.items():
        if key.endswith(".alpha"):
            continue
        if key.endswith(".lora_up.weight"):
            module = key.removesuffix(".lora_up.weight")
            alpha = stripped.get(f"{module}.alpha")
            down = stripped.get(f"{module}.lora_down.weight")
            if alpha is not None and down is not None:
                tensor = tensor.float() * (float(alpha.item()) / down.shape[0])
        out["diffusion_model." + key] = tensor.to(dtype) if dtype is not None else tensor
    return out


def _strip(key: str) -> str:
    for prefix in _WAN_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _dtype_of(pipe: Any, spec: LoraSpec) -> torch.dtype | None:
    part = getattr(pipe, spec.transformer, None)
    dtype = getattr(part, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) else None
