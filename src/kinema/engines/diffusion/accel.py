"""Torch-side helpers of the diffusers engines: devices, dtypes, memory and speed options."""

from __future__ import annotations

import gc
import logging
from typing import Any

import torch

from kinema.engines.diffusion.options import DiffusionOptions
from kinema.errors import EngineError

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
_TRANSFORMERS = ("transformer", "transformer_2")


def resolve_device(name: str | None) -> torch.device:
    """The device to run on: the one named, else the first CUDA GPU, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return device


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """The weights' dtype: as named, else bfloat16 on a GPU and float32 on the CPU."""
    if name is None:
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    return _DTYPES[name]


def device_key(device: torch.device) -> str:
    """One name per physical device ("cuda" and "cuda:0" are the same GPU)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}"
    return device.type


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's out-of-memory error, and for allocator failures reported otherwise."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text
    )


def release_memory(device: torch.device) -> None:
    """Give cached blocks back to the device once the tensors holding them are gone."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def free_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` as its driver reports it; None where that is unknown (CPU)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def modules_of(pipe: Any) -> dict[str, torch.nn.Module]:
    """The pipeline's components that hold weights."""
    return {
        name: part for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)
    }


def module_bytes(module: torch.nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def footprint(pipe: Any, offload: str) -> int:
    """Bytes the pipeline's weights take on the device: all of them, the largest component
    with model offload (one at a time), none with sequential offload (streamed by layer)."""
    sizes = [module_bytes(module) for module in modules_of(pipe).values()]
    if offload == "sequential" or not sizes:
        return 0
    return max(sizes) if offload == "model" else sum(sizes)


def transformers_of(pipe: Any) -> list[Any]:
    """The denoisers: one, or Wan 2.2 A14B's two experts."""
    return [part for name in _TRANSFORMERS if (part := getattr(pipe, name, None)) is not None]


def execution_device(pipe: Any) -> torch.device:
    """Where the pipeline computes (its offload hooks' device when it offloads)."""
    return torch.device(pipe._execution_device)


def apply_speed_options(pipe: Any, options: DiffusionOptions, engine: str, *, steps: int) -> None:
    """Attention backend, step cache and VAE tiling: set once, after loading."""
    from kinema.engines.diffusion.caches import enable_step_cache

    for transformer in transformers_of(pipe):
        if options.attention_backend:
            try:
                transformer.set_attention_backend(options.attention_backend)
            except (AttributeError, ValueError, RuntimeError, ImportError) as error:
                raise EngineError(
                    f"engine {engine}: attention_backend {options.attention_backend!r} "
                    f"is not usable here: {error}"
                ) from None
        if options.cache != "none":
            enable_step_cache(pipe, transformer, options, engine, steps)
    if options.vae_tiling:
        vae = getattr(pipe, "vae", None)
        if vae is None or not hasattr(vae, "enable_tiling"):
            raise EngineError(f"engine {engine}: this model's VAE cannot decode in tiles")
        vae.enable_tiling()


def compile_transformers(pipe: Any, options: DiffusionOptions) -> None:
    """``torch.compile`` the denoisers: their repeated blocks only ("regional", which
    compiles in seconds and gets most of the gain) or whole ("full").

    Whole graphs (``fullgraph``) unless a step cache is on: the cache's hooks keep Python
    state between steps (``hasattr`` on their state objects, step counters) that dynamo
    cannot trace into one graph, so it breaks the graph there and compiles the rest.
    """
    kwargs: dict[str, Any] = {"fullgraph": options.cache == "none"}
    if options.compile_mode:
        kwargs["mode"] = options.compile_mode
    if options.compile_backend:
        kwargs["backend"] = options.compile_backend
    for transformer in transformers_of(pipe):
        if options.compile == "regional" and hasattr(transformer, "compile_repeated_blocks"):
            transformer.compile_repeated_blocks(**kwargs)
        elif options.compile != "off":
            transformer.compile(**kwargs)


def place(pipe: Any, options: DiffusionOptions, device: torch.device, engine: str) -> None:
    """Put the pipeline on ``device``, whole or through CPU offload."""
    if options.offload != "none" and device.type == "cpu":
        raise EngineError(f"engine {engine}: offload = {options.offload!r} needs a GPU device")
    if options.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif options.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def quantize_fp8(pipe: Any, device: torch.device, engine: str) -> None:
    """Float8 weights and activations in the transformers' linear layers (torchao), for
    GPUs with float8 tensor cores (compute capability 8.9+: L4, L40S, H100, H200, B200)."""
    if device.type != "cuda":
        raise EngineError(
            f'engine {engine}: quantize = "fp8" needs an NVIDIA GPU with compute capability '
            f"8.9 or newer (float8 tensor cores); this engine runs on {device}"
        )
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 9):
        raise EngineError(
            f'engine {engine}: quantize = "fp8" needs compute capability 8.9 or newer; '
            f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}"
        )
    try:
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            PerRow,
            quantize_,
        )
    except ImportError as error:
        raise EngineError(
            f'engine {engine}: quantize = "fp8" needs torchao (pip install torchao): {error}'
        ) from None
    for transformer in transformers_of(pipe):
        quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
