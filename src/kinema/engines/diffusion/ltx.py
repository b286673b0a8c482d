"""LTX-Video and LTX-2 (Lightricks): image or text to video at 24 fps, 8k+1 frames.

``ltx`` runs LTX-Video 0.9.x through ``LTXConditionPipeline`` (what 0.9.5+ weights ship
as; it conditions on the first and, when given, the last frame) and ``LTXPipeline`` for
text alone. From 0.9.1 on the VAE is timestep-conditioned: decoding draws noise with the
job's generator on the GPU, and the recommended settings are ``decode_timestep`` 0.05,
``decode_noise_scale`` and ``image_cond_noise_scale`` 0.025, guidance 5.0 (1.0 for the
guidance-distilled checkpoints). With ``upsampler`` (0.9.7+, e.g.
``Lightricks/ltxv-spatial-upscaler-0.9.7``) a clip is made in two stages, as Lightricks
recommends: denoised at ``upsample_scale`` (2/3) of the size, its latents upsampled 2x,
then ``refine_steps`` steps at ``refine_strength`` over them, decoded and resized. The
upsampled latents are matched to the first stage's per-channel statistics (AdaIN,
``adain_factor`` 1.0) and guidance is 3.0, as Lightricks' 0.9.7 recipe has it.

``ltx2`` runs LTX-2, which makes the sound track together with the picture
(``LTX2ImageToVideoPipeline``). Each version has its own guidance recipe: LTX-2.0 uses
classifier-free guidance only (one batched call a step); LTX-2.3 adds spatio-temporal
guidance at block 28 and modality-isolation guidance (three calls a step) and the
cross-modality timestep. The version comes from ``version`` or from the weights (2.3's
transformer has cross-attention modulation). Frame sizes are multiples of 32.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from kinema.engines.diffusion.engine import DiffusionEngine, Plan
from kinema.engines.diffusion.progress import StepProgress
from kinema.errors import EngineError
from kinema.types import Audio

# LTX-2 guidance per version (diffusers' LTX2 pipeline arguments).
LTX2_RECIPES: dict[str, dict[str, Any]] = {
    "2.0": {
        "guidance_scale": 4.0,
        "audio_guidance_scale": 4.0,
        "stg_scale": 0.0,
        "audio_stg_scale": 0.0,
        "modality_scale": 1.0,
        "audio_modality_scale": 1.0,
        "guidance_rescale": 0.0,
        "audio_guidance_rescale": 0.0,
        "spatio_temporal_guidance_blocks": None,
        "use_cross_timestep": False,
    },
    "2.3": {
        "guidance_scale": 3.0,
        "audio_guidance_scale": 7.0,
        "stg_scale": 1.0,
        "audio_stg_scale": 1.0,
        "modality_scale": 3.0,
        "audio_modality_scale": 3.0,
        "guidance_rescale": 0.7,
        "audio_guidance_rescale": 0.7,
        "spatio_temporal_guidance_blocks": [28],
        "use_cross_timestep": True,
    },
}


class LTXVideoEngine(DiffusionEngine):
    kind = "ltx"
    pipeline_class = "LTXConditionPipeline"
    text_pipeline_class = "LTXPipeline"
    native_sizes = ((1216, 704), (704, 1216), (768, 512), (512, 768))
    frame_step = 8
    max_frames = 257
    default_steps = 40
    default_guidance = 5.0
    takes_last_image = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._upsample: Any = None

    TWO_STAGE_GUIDANCE = 3.0  # LTX-Video 0.9.7's recipe for its two-stage pipeline

    def plan(self, request: Any) -> Plan:
        plan = super().plan(request)
        if self.options.upsampler is not None and self.options.guidance_scale is None:
            return replace(plan, guidance_scale=self.TWO_STAGE_GUIDANCE)
        return plan

    def call_arguments(self, plan: Plan) -> dict[str, Any]:
        return {"frame_rate": plan.fps}  # conditions the model's sense of motion speed

    def recipe(self, pipe: Any) -> dict[str, Any]:
        if not pipe.vae.config.get("timestep_conditioning"):
            return {}
        return {
            "decode_timestep": 0.05,
            "decode_noise_scale": 0.025,
            "image_cond_noise_scale": 0.025,
        }

    def image_arguments(self, plan: Plan) -> dict[str, Any]:
        if plan.last_image is None:
            return {"image": plan.image}
        return {"image": [plan.image, plan.last_image], "frame_index": [0, plan.num_frames - 1]}

    def text_target(self, pipe: Any) -> Any:
        # Two stages need the condition pipeline's denoise_strength; it runs without images.
        return pipe if self._upsample is not None else super().text_target(pipe)

    def unload(self) -> None:
        self._upsample = None
        super().unload()

    def load_extras(self, pipe: Any) -> None:
        if self.options.upsampler is None:
            return
        from diffusers import LTXLatentUpsamplePipeline

        try:
            self._upsample = LTXLatentUpsamplePipeline.from_pretrained(
                self.options.upsampler, vae=pipe.vae, dtype=pipe.transformer.dtype
            )
        except (OSError, ValueError, TypeError) as error:
            raise EngineError(
                f"engine {self.name}: cannot load the upsampler {self.options.upsampler}: {error}"
            ) from None
        self._upsample.set_progress_bar_config(disable=True)

    def denoise(self, target: Any, arguments: dict[str, Any], progress: StepProgress) -> Any:
        if self._upsample is None:
            return target(**arguments)
        # 1. Denoise at a smaller size, to latents.
        step = 32  # what the pipeline accepts
        width, height = arguments["width"], arguments["height"]
        scale = self.options.upsample_scale
        small_w = max(step, int(width * scale) // step * step)
        small_h = max(step, int(height * scale) // step * step)
        first = dict(arguments, width=small_w, height=small_h, output_type="latent")
        for key in ("decode_timestep", "decode_noise_scale"):
            first.pop(key, None)
        refine = self.options.refine_steps * self.options.refine_strength
        share = arguments["num_inference_steps"] / (arguments["num_inference_steps"] + refine)
        progress.stage(target, 0.0, share)
        latents = target(**first).frames
        # 2. Upsample the latents 2x in space.
        self._upsample.to(self._upsample_device(target))
        upsampled = self._upsample(
            latents=latents,
            adain_factor=self.options.adain_factor,
            output_type="latent",
            generator=arguments["generator"],
        ).frames
        # 3. Refine: a few steps over the upsampled latents, then decode (resized after).
        progress.stage(target, share, 1.0 - share)
        second = dict(
            arguments,
            width=small_w * 2,
            height=small_h * 2,
            latents=upsampled,
            denoise_strength=self.options.refine_strength,
            num_inference_steps=self.options.refine_steps,
        )
        return target(**second)

    def _upsample_device(self, target: Any) -> Any:
        from kinema.engines.diffusion.accel import execution_device

        return execution_device(target)


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

    def version(self, pipe: Any) -> str:
        """ "2.3" for weights with cross-attention modulation (LTX-2.3), else "2.0"."""
        if self.options.version:
            return self.options.version
        config = pipe.transformer.config
        modulated = config.get("cross_attn_mod") or config.get("audio_cross_attn_mod")
        return "2.3" if modulated or config.get("gated_attn") else "2.0"

    def recipe(self, pipe: Any) -> dict[str, Any]:
        recipe = dict(LTX2_RECIPES[self.version(pipe)])
        if self.options.stg_blocks:
            recipe["spatio_temporal_guidance_blocks"] = list(self.options.stg_blocks)
        if self.options.guidance_scale is not None:  # the catalog's guidance wins
            recipe.pop("guidance_scale")
        return recipe

    def call_arguments(self, plan: Plan) -> dict[str, Any]:
        return {"frame_rate": float(plan.fps)}

    def audio_of(self, pipe: Any, output: Any) -> Audio | None:
        track = output.audio[0]  # (channels, samples), float, from the vocoder
        samples = track.float().cpu().numpy() if hasattr(track, "cpu") else np.asarray(track)
        rate = int(pipe.vocoder.config.output_sampling_rate)
        return Audio(samples=np.clip(samples, -1.0, 1.0).astype(np.float32), sample_rate=rate)
