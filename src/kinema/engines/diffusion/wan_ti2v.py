"""Wan 2.2 TI2V 5B: image (or text) to video at 1280x704 or 704x1280, 24 fps, <= 121 frames.

One 5B transformer over Wan 2.2's high-compression VAE (16x16 pixels and 4 frames per
latent). The same weights make text-to-video (``WanPipeline``) when a request has no image.
Weights: ``Wan-AI/Wan2.2-TI2V-5B-Diffusers``, or FastVideo's distilled
``FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers``, whose ``model_index.json`` names
FastVideo's own pipeline class and leaves ``expand_timesteps`` out (FastVideo sets it in
code). Whether weights are TI2V is read from the components (a 48-channel transformer over
a 48-channel VAE, no image encoder, no second expert), and the flag is set on them.
"""

from __future__ import annotations

from typing import Any

from kinema.engines.diffusion.engine import DiffusionEngine, Plan
from kinema.errors import EngineError


class WanTI2VEngine(DiffusionEngine):
    kind = "wan_ti2v"
    pipeline_class = "WanImageToVideoPipeline"
    text_pipeline_class = "WanPipeline"
    native_sizes = ((1280, 704), (704, 1280))
    frame_step = 4
    float32_components = ("vae",)  # diffusers' advice for the Wan VAE: decode in float32
    max_frames = 121
    default_steps = 50
    default_guidance = 5.0

    def check_weights(self, pipe: Any) -> None:
        if not is_ti2v(pipe):
            raise EngineError(
                f"engine {self.name}: {self.options.weights} is not a Wan 2.2 TI2V model "
                "(TI2V has a 48-channel transformer over a 48-channel VAE, no image encoder "
                "and one expert); use kind wan_i2v for A14B weights"
            )
        if not pipe.config.get("expand_timesteps"):
            pipe.register_to_config(expand_timesteps=True)

    def decode_calls(self, plan: Plan) -> int:
        return (plan.num_frames - 1) // self.frame_step + 1  # the Wan VAE decodes per latent frame


TI2V_CHANNELS = 48  # Wan 2.2's high-compression VAE: latent channels = transformer input


def is_ti2v(pipe: Any) -> bool:
    """Wan 2.2 TI2V weights, told from their components whatever the pipeline class says."""
    transformer = getattr(pipe, "transformer", None)
    vae = getattr(pipe, "vae", None)
    if transformer is None or vae is None:
        return False
    if getattr(pipe, "transformer_2", None) is not None:
        return False
    if getattr(pipe, "image_encoder", None) is not None:
        return False
    channels = transformer.config.get("in_channels")
    return bool(channels == vae.config.get("z_dim") == TI2V_CHANNELS)
