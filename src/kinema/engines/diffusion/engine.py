"""The engine shared by the diffusers models: a pipeline kept loaded, driven by a Veo request.

A model file (``wan_ti2v``, ``wan_i2v``, ``ltx``) names its pipeline classes, native sizes,
frame rule and defaults; this class does the rest:

1. Plan: the request's duration and frame size become the model's frame count and size
   (``shapes``); the first frame is fitted to that size (cover, centre crop, as ``motion``).
2. Load once: ``from_pretrained`` from a directory or hub id, speed options, then onto the
   device after the ``Residency`` made room (least recently used models unloaded first).
3. Run: progress after every denoising step (the VAE decode is the last phase); cancel is
   checked before every transformer call and after every step, through the pipeline's
   interrupt flag; out of memory frees what it can and fails the job with an
   ``EngineError`` that says what to change.
4. Hand over: uint8 RGB frames at the model's size, and sound as the catalog says (the
   motion engine's soundtrack, or the model's own).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageOps

from kinema.engines.diffusion import accel, lora, schedules
from kinema.engines.diffusion.options import GIB, AudioPolicy, DiffusionOptions
from kinema.engines.diffusion.progress import StepProgress
from kinema.engines.diffusion.residency import Residency
from kinema.engines.diffusion.shapes import FrameRule, Size, fit_size
from kinema.errors import EngineError, JobCancelled, NotSupported
from kinema.types import Audio, CancelCheck, Clip, EngineRequest, ProgressCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """One pipeline call, in the model's terms."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    guidance_scale: float
    seed: int
    image: Image.Image | None  # the fitted first frame; None makes a text-to-video call
    last_image: Image.Image | None
    audio: bool  # whether the clip gets sound

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


class DiffusionEngine:
    """Base of the diffusers engines; subclasses set the class attributes below."""

    kind: ClassVar[str]
    pipeline_class: ClassVar[str]  # diffusers image-to-video pipeline
    text_pipeline_class: ClassVar[str | None] = None  # text-to-video on the same weights
    native_sizes: ClassVar[tuple[Size, ...]]
    frame_step: ClassVar[int]  # frame counts are frame_step * k + 1
    max_frames: ClassVar[int]
    default_steps: ClassVar[int]
    default_guidance: ClassVar[float]
    default_audio: ClassVar[AudioPolicy] = "motion"
    native_audio: ClassVar[bool] = False  # the model makes its own sound
    takes_last_image: ClassVar[bool] = False
    denoise_share: ClassVar[float] = 0.9  # of the progress bar; the VAE decode has the rest
    float32_components: ClassVar[tuple[str, ...]] = ()  # kept in float32 whatever the dtype

    def __init__(
        self,
        options: dict[str, Any],
        *,
        name: str | None = None,
        residency: Residency | None = None,
        context_parallel: int = 0,
    ) -> None:
        """``context_parallel``: on a rank of a group, how many ranks share each job."""
        self.name = name or self.kind
        self.options = DiffusionOptions.parse(self.name, options)
        self.audio_policy: AudioPolicy = self.options.audio or self.default_audio
        if self.audio_policy == "native" and not self.native_audio:
            raise EngineError(
                f"engine {self.name}: this model makes no sound of its own; "
                'use audio = "motion" (the motion soundtrack) or "refuse"'
            )
        most = min(self.max_frames, self.options.max_frames or self.max_frames)
        self.frames = FrameRule(self.frame_step, most)
        self.sizes = self.options.sizes or self.native_sizes
        self.loads = 0  # how many times the weights were loaded (they stay between jobs)
        self._residency = residency or Residency()
        self._lock = threading.Lock()
        self._pipe: Any = None
        self._text_pipe: Any = None
        self._device = accel.resolve_device(self.options.device)
        if self._device.type == "cpu" and self.options.planned_offload:
            # Planned for a GPU (KINEMA_GPU_MEMORY_GB) that this process runs without.
            log.info("engine %s: on the CPU, the planned offload is dropped", self.name)
            self.options = replace(self.options, offload="none")
        self._dtype = accel.resolve_dtype(self.options.dtype, self._device)
        self._context_parallel = context_parallel
        self._group: Any = None  # the processes running each job when ``devices`` lists several
        if self.options.devices:
            from kinema.engines.diffusion.parallel import RankGroup

            self._group = RankGroup(type(self), options, self.name)

    # --- what a model file may add ---

    def check_weights(self, pipe: Any) -> None:
        """Refuse weights of another model, and adjust the loaded pipeline's config."""

    def call_arguments(self, plan: Plan) -> dict[str, Any]:
        """Model-specific keyword arguments of the pipeline call."""
        return {}

    def decode_calls(self, plan: Plan) -> int:
        """How many times the VAE runs its decoder for one clip (for decode progress)."""
        return 1

    def image_arguments(self, plan: Plan) -> dict[str, Any]:
        """How the fitted first (and last) frame reach the pipeline."""
        arguments: dict[str, Any] = {"image": plan.image}
        if plan.last_image is not None:
            arguments["last_image"] = plan.last_image
        return arguments

    def recipe(self, pipe: Any) -> dict[str, Any]:
        """Call arguments the loaded weights want (dropped where a pipeline lacks them)."""
        return {}

    def denoise(self, target: Any, arguments: dict[str, Any], progress: StepProgress) -> Any:
        """Run the pipeline call; a model with several stages overrides this."""
        return target(**arguments)

    def load_extras(self, pipe: Any) -> None:
        """Load what a model needs besides its pipeline (LTX-Video's upsampler, say)."""

    def audio_of(self, pipe: Any, output: Any) -> Audio | None:
        """The model's own sound track from a pipeline output (models with native audio)."""
        return None

    # --- the engine interface ---

    @property
    def pipeline(self) -> Any:
        """The loaded image-to-video pipeline, or None while unloaded."""
        return self._pipe

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def group(self) -> Any:
        """The rank processes running each job across ``devices``; None on one device."""
        return self._group

    def setup(self) -> None:
        """Load the weights now, so a wrong path or a model that does not fit fails at once."""
        if self._group is not None:
            with self._lock:
                self._group.start()
            return
        with self._residency.using(self), self._lock:
            self._ensure_loaded()

    def unload(self) -> None:
        """Drop the weights (the ``Residency`` calls this on idle engines only)."""
        if self._group is not None:
            self._group.stop()
        self._pipe = self._text_pipe = None
        self._residency.forget(self)
        accel.release_memory(self._device)
        log.info("engine %s unloaded", self.name)

    def plan(self, request: EngineRequest) -> Plan:
        """The pipeline call for ``request``: native size and frame count, fitted pictures."""
        num_frames = self.frames.fit(request.num_frames)
        width, height = fit_size(request.width, request.height, self.sizes)
        if request.generate_audio and self.audio_policy == "refuse":
            raise EngineError(
                f"engine {self.name} makes no sound: give its models audio = false in the "
                'catalog, or the engine audio = "motion"'
            )
        image = request.image
        if image is None and request.reference_images:
            image = request.reference_images[0]
        if image is None and self.text_pipeline_class is None:
            # An image-only model still serves text-to-video ids: it animates a painting.
            from kinema.engines.motion.painting import paint_first_frame  # (OpenCV, via motion)

            image = paint_first_frame(request.prompt, width, height, request.seed)
        last = request.last_image if self.takes_last_image else None
        return Plan(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or self.options.negative_prompt,
            width=width,
            height=height,
            num_frames=num_frames,
            fps=request.fps,
            steps=self.options.steps or self.default_steps,
            guidance_scale=_or(self.options.guidance_scale, self.default_guidance),
            seed=request.seed,
            image=_fit(image, width, height),
            last_image=_fit(last, width, height),
            audio=request.generate_audio,
        )

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        if is_cancelled():
            raise JobCancelled("cancelled before generation started")
        plan = self.plan(request)
        if self._group is not None:
            with self._turn(is_cancelled):
                video, audio = self._group.run(plan, on_progress, is_cancelled)
        else:
            with self._residency.using(self), self._turn(is_cancelled):
                pipe = self._ensure_loaded()
                video, audio = self.generate(pipe, plan, on_progress, is_cancelled)
        if plan.audio and audio is None and self.audio_policy == "motion":
            from kinema.engines.sound.soundtrack import build_soundtrack  # (PyAV, via media)

            audio = build_soundtrack(plan.prompt, plan.duration_s, plan.seed)
        if not plan.audio:
            audio = None
        on_progress(1.0)
        count, height, width, _ = video.shape
        return Clip(width, height, plan.fps, count, list(video), audio)

    @contextmanager
    def _turn(self, is_cancelled: CancelCheck) -> Iterator[None]:
        """The pipeline runs one job at a time; a job cancelled while it waits ends there."""
        while not self._lock.acquire(timeout=0.25):
            if is_cancelled():
                raise JobCancelled("cancelled while waiting for the model")
        try:
            yield
        finally:
            self._lock.release()

    # --- loading ---

    def adopt(self, pipe: Any) -> None:
        """Use a pipeline built in memory instead of reading ``weights`` (the benchmark's
        random full-size model); it goes through the same checks, options and placement."""
        with self._residency.using(self), self._lock:
            if self._pipe is not None:
                self.unload()
            self._install(pipe, time.monotonic())

    def _ensure_loaded(self) -> Any:
        if self._pipe is not None:
            return self._pipe
        started = time.monotonic()
        return self._install(self._read_weights(), started)

    def prepare(self, pipe: Any) -> Any:
        """Everything loading does short of placing on the device: weight checks, dtypes,
        schedule, LoRAs, extras and speed options (the full-size checks run this on
        weights built on the meta device)."""
        self.check_weights(pipe)
        for name in self.float32_components:  # e.g. the Wan VAE, which decodes in float32
            part = getattr(pipe, name, None)
            if part is not None and part.dtype != torch.float32:
                part.to(torch.float32)
        schedules.apply(pipe, self.options, self.name)
        lora.load(pipe, self.options, self.name)
        self.load_extras(pipe)
        steps = self.options.steps or self.default_steps
        accel.apply_speed_options(pipe, self.options, self.name, steps=steps, device=self._device)
        return pipe

    def _install(self, pipe: Any, started: float) -> Any:
        self.prepare(pipe)
        need = accel.footprint(pipe, self.options.offload)
        device = accel.device_key(self._device)
        evicted = self._residency.make_room(
            self,
            device,
            need,
            budget=self.options.memory_budget_bytes,
            free_bytes=lambda: accel.free_bytes(self._device),
            reserve=int(self.options.reserve_gb * GIB),
        )
        if evicted:
            log.info("engine %s: unloaded %s to make room", self.name, ", ".join(evicted))
        self._place(pipe, need)
        if self.options.quantize == "fp8":
            accel.quantize_fp8(pipe, self._device, self.name)
        if self._context_parallel > 1:
            from kinema.engines.diffusion.parallel import enable_context_parallel

            enable_context_parallel(pipe, self._context_parallel, self.name)
        accel.compile_transformers(pipe, self.options, self._device)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe
        self.loads += 1
        self._residency.admit(self, device, need)
        log.info(
            "engine %s: loaded %s (%.2f GiB on %s) in %.1f s",
            self.name,
            self.options.weights,
            need / GIB,
            device,
            time.monotonic() - started,
        )
        return pipe

    def _read_weights(self) -> Any:
        pipeline_type = _diffusers_class(self.pipeline_class, self.name)
        source = self.options.weights
        path = Path(source).expanduser()
        if path.exists():
            source = str(path)
        elif source.startswith(("/", ".", "~")):
            pulled = f" (download it with: kinema pull {self.name})" if self.options.repo else ""
            raise EngineError(f"engine {self.name}: no weights directory at {source}{pulled}")
        try:
            dtype: Any = self._dtype
            if self.float32_components and self._dtype != torch.float32:
                dtype = {"default": self._dtype} | dict.fromkeys(
                    self.float32_components, torch.float32
                )
            pipe = pipeline_type.from_pretrained(
                source,
                dtype=dtype,
                revision=self.options.revision,
                variant=self.options.variant,
                **self._straight_to_device(),
            )
            if self._straight_to_device():
                pipe.hf_device_map = None  # all on one device: ``pipe.to`` stays allowed
            return pipe
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise EngineError(
                f"engine {self.name}: cannot load {self.pipeline_class} weights from "
                f"{self.options.weights}: {error}"
            ) from None

    def _straight_to_device(self) -> dict[str, Any]:
        """A rank of a context-parallel group reads its weights straight onto its GPU
        (``device_map``), so N ranks do not each hold the whole pipeline in host memory.
        diffusers takes "cuda" (the rank's current device), not "cuda:N"."""
        on_gpu = self._context_parallel > 1 and self._device.type == "cuda"
        if on_gpu and self.options.offload == "none" and self.options.quantize is None:
            return {"device_map": "cuda"}
        return {}

    def _place(self, pipe: Any, need: int) -> None:
        """Move the pipeline to the device; on out-of-memory, unload every idle model once
        and try again."""
        for attempt in (1, 2):
            failure = ""
            try:
                accel.place(pipe, self.options, self._device, self.name)
                return
            except Exception as error:
                if not accel.is_out_of_memory(error):
                    raise
                failure = _first_line(error)
            pipe.to("cpu")
            accel.release_memory(self._device)
            device = accel.device_key(self._device)
            if attempt == 2 or not self._residency.unload_idle(device, besides=self.name):
                raise EngineError(
                    f"engine {self.name}: its weights ({need / GIB:.1f} GiB) do not fit on "
                    f'{device} ({failure}); set offload = "model" (or "sequential"), '
                    "or give this model a GPU of its own"
                )

    def _text_pipeline(self, pipe: Any) -> Any:
        if self._text_pipe is None:
            assert self.text_pipeline_class is not None
            text_type = _diffusers_class(self.text_pipeline_class, self.name)
            # Built from the loaded modules as they are: ``from_pipe`` would cast them all to
            # one dtype, including the parts the model keeps in float32.
            takes = inspect.signature(text_type.__init__).parameters
            parts = {k: v for k, v in pipe.components.items() if k in takes}
            settings = {k: v for k, v in pipe.config.items() if k in takes and k not in parts}
            self._text_pipe = text_type(**parts, **settings)
            self._text_pipe.set_progress_bar_config(disable=True)
        return self._text_pipe

    # --- generating ---

    def text_target(self, pipe: Any) -> Any:
        """The pipeline that makes a clip from text alone."""
        return self._text_pipeline(pipe)

    def generate(
        self,
        pipe: Any,
        plan: Plan,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
        *,
        decode: bool = True,
        is_cancelled_while_decoding: CancelCheck | None = None,
    ) -> tuple[np.ndarray, Audio | None]:
        """One clip on the loaded ``pipe`` (the caller holds the engine's turn; the ranks of
        a group call this directly). ``decode=False`` (ranks other than 0) stops at the
        latents and returns an empty array."""
        target = pipe if plan.image is not None else self.text_target(pipe)
        progress = StepProgress(
            target,
            plan.steps,
            self.denoise_share,
            self.decode_calls(plan),
            on_progress,
            is_cancelled,
            is_cancelled_while_decoding or is_cancelled,
        )
        arguments = self._call_arguments(target, plan, progress)
        if not decode:
            arguments["output_type"] = "latent"
        hooks = progress.attach(
            accel.transformers_of(target) if self.options.compile != "full" else [],
            getattr(getattr(target, "vae", None), "decoder", None),
        )
        native = plan.audio and self.audio_policy == "native"
        failure = ""
        try:
            with schedules.seeded_steps(target.scheduler, arguments["generator"]):
                output = self.denoise(target, arguments, progress)
            if not decode:
                return np.zeros((0, 0, 0, 3), np.uint8), None
            video = output.frames[0]
            if (video.shape[-1], video.shape[-2]) != (plan.width, plan.height):
                video = _resize(video, plan.width, plan.height)
            return _to_uint8(video), self.audio_of(target, output) if native else None
        except Exception as error:
            target._interrupt = False
            target.maybe_free_model_hooks()  # what a finished call does: reset caches, offload
            if not accel.is_out_of_memory(error):
                raise
            failure = _first_line(error)
        finally:
            for hook in hooks:
                hook.remove()
        # Out of memory: the exception and the tensors its frames held are gone by now.
        self._recover_from_out_of_memory()
        raise EngineError(
            f"out of GPU memory making {plan.num_frames} frames at {plan.width}x{plan.height} "
            f"with {self.name} ({failure}); memory was freed. Ask for fewer frames or a smaller "
            'size, or set vae_tiling = true, offload = "model" or a smaller dtype'
        )

    def _call_arguments(self, target: Any, plan: Plan, progress: StepProgress) -> dict[str, Any]:
        # The generator lives where the pipeline runs: pipelines draw decode-time noise with
        # it on their execution device (LTX-Video's timestep-conditioned VAE, say).
        device = accel.execution_device(target)
        arguments: dict[str, Any] = {
            "prompt": plan.prompt,
            "negative_prompt": plan.negative_prompt,
            "height": plan.height,
            "width": plan.width,
            "num_frames": plan.num_frames,
            "num_inference_steps": plan.steps,
            "guidance_scale": plan.guidance_scale,
            "generator": torch.Generator(device).manual_seed(plan.seed),
            "output_type": "pt",
            "callback_on_step_end": progress.on_step_end,
            "callback_on_step_end_tensor_inputs": [],
        }
        if plan.image is not None:
            arguments.update(self.image_arguments(plan))
        if self.options.max_sequence_length:
            arguments["max_sequence_length"] = self.options.max_sequence_length
        takes = inspect.signature(target.__call__).parameters
        arguments.update({k: v for k, v in self.recipe(target).items() if k in takes})
        arguments.update(self.call_arguments(plan))
        arguments.update(self.options.call)
        return arguments

    def _recover_from_out_of_memory(self) -> None:
        accel.release_memory(self._device)
        evicted = self._residency.unload_idle(accel.device_key(self._device), besides=self.name)
        if evicted:
            log.warning("engine %s ran out of memory; unloaded %s", self.name, ", ".join(evicted))


def _diffusers_class(name: str, engine: str) -> Any:
    import diffusers

    found = getattr(diffusers, name, None)
    if found is None:
        raise NotSupported(
            f"engine {engine} needs diffusers' {name}, which diffusers {diffusers.__version__} "
            "does not have; upgrade diffusers"
        )
    return found


def _fit(image: Image.Image | None, width: int, height: int) -> Image.Image | None:
    """Cover the frame keeping the aspect ratio, cropping the overflow evenly (as motion)."""
    if image is None:
        return None
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def _resize(video: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(frames, 3, H, W) to the planned size (a model that works at another size)."""
    return torch.nn.functional.interpolate(
        video.float(), size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    """(frames, 3, H, W) floats in 0..1 -> (frames, H, W, 3) uint8, converted on the device."""
    pixels = video.clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
