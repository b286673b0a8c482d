"""LTX-Video and LTX-2 (Lightricks): image or text to video at 24 fps, 8k+1 frames.

``ltx`` runs LTX-Video (0.9.x) through ``LTXImageToVideoPipeline``; ``ltx2`` runs LTX-2,
which makes the sound track together with the picture (``LTX2ImageToVideoPipeline``) and
is available where the installed diffusers has that pipeline (else the engine is
``NotSupported``). Both make text-to-video from the same weights. Frame sizes must be
multiples of 32. Weights: ``Lightricks/LTX-Video-0.9.7-dev`` (or another 0.9.x in
diffusers layout) and ``Lightricks/LTX-2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kinema.engines.diffusion.engine import DiffusionEngine, Plan
from kinema.types import Audio


class LTXVideoEngine(DiffusionEngine):
    kind = "ltx"
    pipeline_class = "LTXImageToVideoPipeline"
    text_pipeline_class = "LTXPipeline"
    native_sizes = ((1216, 704), (704, 1216), (768, 512), (512, 768))
    frame_step = 8
    max_frames = 257
    default_steps = 50
    default_guidance = 3.0

    def call_arguments(self, plan: Plan) -> dict[str, Any]:
        return {"frame_rate": plan.fps}  # conditions the model's sense of motion speed


class LTX2Engine(DiffusionEngine):
    kind = "ltx2"
    pipeline_class = "LTX2ImageToVideoPipeline"
    text_pipeline_class = "LTX2Pipeline"
    native_sizes = ((1280, 704), (704, 1280), (768, 512), (512, 768), (1920, 1088), (1088, 1920))
    frame_step = 8
    max_frames = 481  # 20 s at 24 fps
    default_steps = 40
    default_guidance = 4.0
    default_audio = "native"
    native_audio = True

    def call_arguments(self, plan: Plan) -> dict[str, Any]:
        return {"frame_rate": float(plan.fps)}

    def audio_of(self, pipe: Any, output: Any) -> Audio | None:
        track = output.audio[0]  # (channels, samples), float, from the vocoder
        samples = track.float().cpu().numpy() if hasattr(track, "cpu") else np.asarray(track)
        rate = int(pipe.vocoder.config.output_sampling_rate)
        return Audio(samples=np.clip(samples, -1.0, 1.0).astype(np.float32), sample_rate=rate)
