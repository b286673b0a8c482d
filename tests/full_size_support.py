"""Full-size diffusers models without a GPU: built from the committed configurations
(tests/fixtures/full_size/) on the meta device, run as fake tensors.

- ``build_pipeline``: every component of an engine's weights, at its real size, on the
  meta device (no memory), put together as the engine's pipeline class.
- ``PeakMemory``: a dispatch mode that adds up the bytes of every tensor storage an
  operation creates and takes them off when the storage is freed, so a forward under
  ``FakeTensorMode`` reports the activation peak a GPU would see (weights not counted).
- ``transformer_peak`` / ``decode_peak``: one fake forward of the transformer, or one fake
  VAE decode, at a catalog size and frame count.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tests.tiny_pipelines import word_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "full_size"
BF16 = torch.bfloat16


def fixture(name: str) -> Path:
    return FIXTURES / name


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _diffusers_class(library: str, name: str) -> Any:
    import diffusers

    if library == "ltx2":
        from diffusers.pipelines import ltx2

        return getattr(ltx2, name)
    if library == "ltx":
        from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

        return LTXLatentUpsamplerModel
    return getattr(diffusers, name)


def build_component(folder: Path, library: str, name: str) -> Any:
    """One component from its config, on the meta device."""
    if library == "transformers":
        if "Tokenizer" in name:
            return word_tokenizer(512)
        import transformers

        config_data = read(folder / "config.json")
        config_type = transformers.AutoConfig.for_model(**config_data)
        with torch.device("meta"):
            model = getattr(transformers, name)(config_type)
        return model.to(BF16)
    component = _diffusers_class(library, name)
    if "Scheduler" in name:
        return component.from_config(read(folder / "scheduler_config.json"))
    with torch.device("meta"):
        return component.from_config(read(folder / "config.json"))


def build_components(weights: Path) -> dict[str, Any]:
    """Every component listed in ``model_index.json``, at the serving dtypes."""
    index = read(weights / "model_index.json")
    parts: dict[str, Any] = {}
    for key, value in index.items():
        if key.startswith("_") or not isinstance(value, list):
            continue
        library, name = value
        parts[key] = None if library is None else build_component(weights / key, library, name)
    for part in parts.values():
        if isinstance(part, torch.nn.Module):
            part.to(BF16)  # as from_pretrained(dtype=bfloat16); engines widen what they keep
    return parts


def build_pipeline(pipeline_class: str, weights: Path) -> Any:
    """The engine's pipeline over full-size meta components, configured as
    ``from_pretrained`` would from ``model_index.json``."""
    import inspect

    import diffusers

    pipeline_type = getattr(diffusers, pipeline_class)
    parts = build_components(weights)
    index = read(weights / "model_index.json")
    takes = inspect.signature(pipeline_type.__init__).parameters
    arguments = {k: v for k, v in parts.items() if k in takes}
    for name in takes:
        if name in index and name not in parts and not name.startswith("_"):
            arguments[name] = index[name]
    for name, parameter in takes.items():
        if (
            name not in arguments
            and name != "self"
            and parameter.default is inspect.Parameter.empty
        ):
            arguments[name] = None
    return pipeline_type(**arguments)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class PeakMemory(TorchDispatchMode):
    """Bytes held by the tensors operations create, at most and now (weights excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.peak = 0
        self._alive: dict[int, Any] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self._track(tensor.untyped_storage())
        return out

    def ignore(self, module: torch.nn.Module) -> None:
        """Count nothing for ``module``'s weights (views of them create no memory)."""
        for tensor in [*module.parameters(), *module.buffers()]:
            storage = tensor.untyped_storage()
            self._alive[id(storage)] = weakref.ref(storage)

    def _track(self, storage: Any) -> None:
        key = id(storage)
        known = self._alive.get(key)
        if known is not None and known() is storage:
            return
        size = storage.nbytes()
        self.now += size
        self.peak = max(self.peak, self.now)

        def freed(_ref: Any, size: int = size, key: int = key) -> None:
            self.now -= size
            self._alive.pop(key, None)

        self._alive[key] = weakref.ref(storage, freed)


@contextmanager
def fake_run(*modules: torch.nn.Module) -> Iterator[PeakMemory]:
    """Turn ``modules`` (built on the meta device) into fake tensors and measure what runs
    inside the block."""
    with FakeTensorMode(allow_non_fake_inputs=True), torch.no_grad():
        tracker = PeakMemory()
        for module in modules:
            if any(p.device.type == "meta" for p in module.parameters()):
                module.to_empty(device="cpu")
            tracker.ignore(module)
        with tracker:
            yield tracker


def empty(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype)


def latent_frames(frames: int, step: int) -> int:
    return (frames - 1) // step + 1


def transformer_inputs(
    kind: str, config: Any, width: int, height: int, frames: int, batch: int, fps: int
) -> dict[str, Any]:
    """The keyword arguments of one transformer call, as fake tensors (inside ``fake_run``)."""
    if kind in ("wan_ti2v", "wan_i2v"):
        scale = 16 if kind == "wan_ti2v" else 8
        f, h, w = latent_frames(frames, 4), height // scale, width // scale
        tokens = f * (h // 2) * (w // 2)
        expand = kind == "wan_ti2v"  # TI2V: one timestep per token (the first frame is clean)
        return {
            "hidden_states": empty(batch, config.in_channels, f, h, w),
            "timestep": empty(batch, tokens, dtype=torch.float32) if expand else empty(batch),
            "encoder_hidden_states": empty(batch, 512, config.text_dim),
            "return_dict": False,
        }
    f, h, w = latent_frames(frames, 8), height // 32, width // 32
    tokens = f * h * w
    if kind == "ltx":
        return {
            "hidden_states": empty(batch, tokens, config.in_channels),
            "encoder_hidden_states": empty(batch, 128, config.caption_channels),
            "timestep": empty(batch, tokens, dtype=torch.float32),
            "encoder_attention_mask": empty(batch, 128),
            "video_coords": empty(batch, 3, tokens, dtype=torch.float32),
            "num_frames": f,
            "height": h,
            "width": w,
            "return_dict": False,
        }
    audio = round(frames / fps * 25)  # 16 kHz mel at hop 160, 4x in time: 25 latents a second
    return {
        "hidden_states": empty(batch, tokens, config.in_channels),
        "audio_hidden_states": empty(batch, audio, config.audio_in_channels),
        "encoder_hidden_states": empty(batch, 1024, config.caption_channels),
        "audio_encoder_hidden_states": empty(batch, 1024, config.caption_channels),
        "timestep": empty(batch, tokens, dtype=torch.float32),
        "audio_timestep": empty(batch, audio, dtype=torch.float32),
        "encoder_attention_mask": empty(batch, 1024),
        "audio_encoder_attention_mask": empty(batch, 1024),
        "num_frames": f,
        "height": h,
        "width": w,
        "fps": float(fps),
        "audio_num_frames": audio,
        "return_dict": False,
    }


def decode_latents(kind: str, vae: Any, width: int, height: int, frames: int) -> torch.Tensor:
    step = 4 if kind.startswith("wan") else 8
    scale = (
        vae.config.get("scale_factor_spatial") or vae.config.get("spatial_compression_ratio") or 8
    )
    channels = vae.config.get("z_dim") or vae.config.get("latent_channels")
    dtype = next(iter(vae.decoder.parameters())).dtype
    return empty(
        1, channels, latent_frames(frames, step), height // scale, width // scale, dtype=dtype
    )
