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
_TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


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
    """Bytes the pipeline's weights take on the device: all of them (but the text encoders
    with their offload), the largest component with model offload (one at a time), none
    with sequential offload (streamed by layer)."""
    modules = modules_of(pipe)
    if offload == "text_encoder":  # they visit the GPU only while a prompt is encoded
        modules = {k: v for k, v in modules.items() if k not in _TEXT_ENCODERS}
    sizes = [module_bytes(module) for module in modules.values()]
    if offload == "sequential" or not sizes:
        return 0
    return max(sizes) if offload == "model" else sum(sizes)


def transformers_of(pipe: Any) -> list[Any]:
    """The denoisers: one, or Wan 2.2 A14B's two experts."""
    return [part for name in _TRANSFORMERS if (part := getattr(pipe, name, None)) is not None]


def execution_device(pipe: Any) -> torch.device:
    """Where the pipeline computes (its offload hooks' device when it offloads)."""
    return torch.device(pipe._execution_device)


# The attention backend a GPU gets when the catalog names none: PyTorch's cuDNN attention
# needs no extra package, takes the text masks LTX passes, and is the fastest SDPA kernel
# on Hopper and later (compute capability 9.0+).
FAST_ATTENTION = "_native_cudnn"
FAST_ATTENTION_FROM = (9, 0)


def attention_backend(options: DiffusionOptions, device: torch.device) -> str | None:
    """The backend to set: the catalog's, else cuDNN on Hopper or later, else diffusers'."""
    if options.attention_backend:
        return options.attention_backend
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= FAST_ATTENTION_FROM:
        return FAST_ATTENTION
    return None


def compile_mode(options: DiffusionOptions, device: torch.device) -> str:
    """``compile = "auto"`` (the default): the repeated blocks on a GPU, nothing on a CPU."""
    if options.compile == "auto":
        return "regional" if device.type == "cuda" else "off"
    return options.compile


def decode_dtype(options: DiffusionOptions, device: torch.device) -> torch.dtype | None:
    """The VAE decoder's dtype where it differs from the VAE's: bfloat16 for few-step
    entries on a GPU (their decode costs as much as the denoise; bfloat16 decodes the
    same picture), as ``decode_dtype`` says otherwise. None: leave it as loaded."""
    if options.decode_dtype is not None:
        return _DTYPES[options.decode_dtype]
    if options.few_step and device.type == "cuda":
        return torch.bfloat16
    return None


def apply_speed_options(
    pipe: Any, options: DiffusionOptions, engine: str, *, steps: int, device: torch.device
) -> None:
    """Attention backend, step cache, VAE tiling and decode dtype: set once, after loading."""
    from kinema.engines.diffusion.caches import enable_step_cache

    backend = attention_backend(options, device)
    for transformer in transformers_of(pipe):
        if backend:
            try:
                transformer.set_attention_backend(backend)
            except (AttributeError, ValueError, RuntimeError, ImportError) as error:
                raise EngineError(
                    f"engine {engine}: attention_backend {backend!r} is not usable here: {error}"
                ) from None
        if options.cache != "none":
            enable_step_cache(pipe, transformer, options, engine, steps)
    if options.vae_tiling:
        vae = getattr(pipe, "vae", None)
        if vae is None or not hasattr(vae, "enable_tiling"):
            raise EngineError(f"engine {engine}: this model's VAE cannot decode in tiles")
        vae.enable_tiling()
    dtype = decode_dtype(options, device)
    if dtype is not None and getattr(pipe, "vae", None) is not None:
        decode_in(pipe.vae, dtype)


def decode_in(vae: Any, dtype: torch.dtype) -> None:
    """Run ``vae``'s decoder in ``dtype`` and its encoder as loaded (float32 for Wan, whose
    image conditioning is encoded once): the decoder's weights are cast, and ``decode``
    casts the latents in and the pixels back to the VAE's dtype."""
    decoder_parts = [getattr(vae, name, None) for name in ("decoder", "post_quant_conv")]
    parts = [part for part in decoder_parts if isinstance(part, torch.nn.Module)]
    if not parts or all(_dtype(part) == dtype for part in parts):
        return
    outer = _dtype(vae)
    for part in parts:
        part.to(dtype)
    decode = vae.decode

    def decode_cast(z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        output = decode(z.to(dtype), *args, **kwargs)
        sample = getattr(output, "sample", None)
        if isinstance(sample, torch.Tensor):
            output.sample = sample.to(outer)
            return output
        if isinstance(output, tuple):
            return tuple(t.to(outer) if isinstance(t, torch.Tensor) else t for t in output)
        return output

    vae.decode = decode_cast


def _dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def compile_transformers(pipe: Any, options: DiffusionOptions, device: torch.device) -> None:
    """``torch.compile`` the denoisers: their repeated blocks only ("regional", which
    compiles in seconds and gets most of the gain) or whole ("full").

    Whole graphs (``fullgraph``) unless a step cache is on: the cache's hooks keep Python
    state between steps (``hasattr`` on their state objects, step counters) that dynamo
    cannot trace into one graph, so it breaks the graph there and compiles the rest.
    """
    mode = compile_mode(options, device)
    kwargs: dict[str, Any] = {"fullgraph": options.cache == "none"}
    if options.compile_dynamic:
        # The sequence length changes with every size and frame count: one graph with a
        # symbolic length instead of a recompile (minutes at 14B) for each new request shape.
        kwargs["dynamic"] = True
    if options.compile_mode:
        kwargs["mode"] = options.compile_mode
    if options.compile_backend:
        kwargs["backend"] = options.compile_backend
    for transformer in transformers_of(pipe):
        if mode == "regional" and hasattr(transformer, "compile_repeated_blocks"):
            transformer.compile_repeated_blocks(**kwargs)
        elif mode != "off":
            transformer.compile(**kwargs)


def place(pipe: Any, options: DiffusionOptions, device: torch.device, engine: str) -> None:
    """Put the pipeline on ``device``, whole or through CPU offload."""
    if options.offload != "none" and device.type == "cpu":
        raise EngineError(f"engine {engine}: offload = {options.offload!r} needs a GPU device")
    if options.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif options.offload == "text_encoder":
        offload_text_encoders(pipe, device)
    elif options.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def offload_text_encoders(pipe: Any, device: torch.device) -> None:
    """Keep the text encoder(s) in host memory, on the GPU only while a prompt is encoded,
    and everything else on the GPU: the encoder runs once a clip, so the transformer gets
    its memory (11 GiB for UMT5-XXL, 23 GiB for Gemma 3 12B) for the cost of one copy."""
    from accelerate import cpu_offload_with_hook

    encoders = [getattr(pipe, name, None) for name in _TEXT_ENCODERS]
    for part in modules_of(pipe).values():
        if not any(part is encoder for encoder in encoders):
            part.to(device)
    for encoder in encoders:
        if isinstance(encoder, torch.nn.Module):
            _, hook = cpu_offload_with_hook(encoder, device)
            encoder.register_forward_hook(lambda *_args, hook=hook: hook.offload())


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
