"""Wan 2.2 I2V A14B: image to video at 480p or 720p, 16 fps, 81 frames, with two experts.

A high-noise transformer lays out the scene for the first denoising steps, then a
low-noise one refines detail; the switch happens at ``boundary_ratio`` of the timestep
range (0.9 in the released model, read from its weights; the ``boundary_ratio`` option
overrides it). Each expert has its own guidance (``guidance_scale``, ``guidance_scale_2``).
A request without an image animates a picture painted from the prompt (these weights do
image-to-video only). An optional last frame is passed to the pipeline as an end frame.
Weights: ``Wan-AI/Wan2.2-I2V-A14B-Diffusers``.
"""

from __future__ import annotations

from typing import Any

from kinema.engines.diffusion.engine import DiffusionEngine, Plan
from kinema.errors import EngineError


class WanI2VEngine(DiffusionEngine):
    kind = "wan_i2v"
    pipeline_class = "WanImageToVideoPipeline"
    native_sizes = ((832, 480), (480, 832), (1280, 720), (720, 1280))
    frame_step = 4
    float32_components = ("vae",)  # diffusers' advice for the Wan VAE: decode in float32
    max_frames = 81
    default_steps = 40
    default_guidance = 3.5
    takes_last_image = True

    def check_weights(self, pipe: Any) -> None:
        if getattr(pipe, "transformer_2", None) is None or pipe.transformer is None:
            raise EngineError(
                f"engine {self.name}: {self.options.weights} lacks the two experts "
                "(transformer and transformer_2) of Wan 2.2 A14B"
            )
        if self.options.boundary_ratio is not None:
            pipe.register_to_config(boundary_ratio=self.options.boundary_ratio)
        if pipe.config.get("boundary_ratio") is None:
            raise EngineError(
                f"engine {self.name}: the weights set no boundary_ratio; give one in the catalog"
            )

    def call_arguments(self, plan: Plan) -> dict[str, Any]:
        second = self.options.guidance_scale_2
        return {"guidance_scale_2": plan.guidance_scale if second is None else second}

    def decode_calls(self, plan: Plan) -> int:
        return (plan.num_frames - 1) // self.frame_step + 1
