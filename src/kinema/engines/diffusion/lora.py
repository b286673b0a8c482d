"""LoRAs on top of a model's weights: read from disk or the local Hugging Face cache only.

Each ``[[engines.X.lora]]`` names a ``.safetensors`` file, a directory or a hub id (with
``weight_name`` for the file inside), a ``scale`` and the transformer it goes into:
``transformer``, or ``transformer_2`` for Wan 2.2 A14B's low-noise expert (diffusers'
``load_into_transformer_2``). A hub id is looked up in the local cache and never fetched:
kinema downloads nothing while serving (docs/gpu.md has the download commands).

With ``lora_fuse = true`` (the default) the LoRAs are merged into the weights once after
loading and the adapter layers removed, so a step costs what it costs without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
            pipe.load_lora_weights(_state_dict(spec, engine), adapter_name=name, **extra)
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
