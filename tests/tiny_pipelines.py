"""Tiny random-weight diffusers pipelines for each diffusers engine, saved in diffusers layout.

The configurations follow diffusers' own fast tests: the real classes (transformers, VAEs,
schedulers, text encoders) at a few thousand parameters, so loading, denoising and
decoding run for real on a CPU in a fraction of a second. Tokenizers are word-level
``tokenizers`` models built here, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

WORDS = ("a", "the", "cat", "dog", "walks", "runs", "in", "on", "park", "red", "blue", "slowly")


def word_tokenizer(max_length: int = 64) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer with pad, eos, bos and unk tokens."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "<bos>": 3}
    vocab.update({word: index + len(vocab) for index, word in enumerate(WORDS)})
    model = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    model.normalizer = normalizers.Lowercase()
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    model.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=model,
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<bos>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def _t5(umt5: bool = False) -> Any:
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    shape = {
        "vocab_size": 64,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 1,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
    }
    return UMT5EncoderModel(UMT5Config(**shape)) if umt5 else T5EncoderModel(T5Config(**shape))


def _wan_transformer(in_channels: int, out_channels: int) -> Any:
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def wan_ti2v() -> Any:
    """Wan 2.2 TI2V 5B in miniature: 48-channel VAE at 16x, one transformer, expand_timesteps."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    return WanImageToVideoPipeline(
        tokenizer=word_tokenizer(),
        text_encoder=_t5(umt5=True),
        vae=vae,
        scheduler=scheduler,
        transformer=_wan_transformer(48, 48),
        transformer_2=None,
        image_encoder=None,
        image_processor=None,
        expand_timesteps=True,
    )


def wan_i2v() -> Any:
    """Wan 2.2 I2V A14B in miniature: two experts switching at boundary ratio 0.875."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    return WanImageToVideoPipeline(
        tokenizer=word_tokenizer(),
        text_encoder=_t5(umt5=True),
        vae=vae,
        scheduler=scheduler,
        transformer=_wan_transformer(36, 16),
        transformer_2=_wan_transformer(36, 16),
        image_encoder=None,
        image_processor=None,
        boundary_ratio=0.875,
    )


def ltx() -> Any:
    """LTX-Video 0.9.7 in miniature: the condition pipeline over a timestep-conditioned VAE
    (which draws noise with the job's generator when it decodes)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4,
        upsample_factor=(1,) * 4,
        timestep_conditioning=True,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    return LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=_t5(),
        tokenizer=word_tokenizer(),
        transformer=transformer,
    )


def ltx2() -> Any:
    """LTX-2 in miniature, with its audio VAE and vocoder, and a tiny Gemma 3 text encoder."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig
    from transformers.models.gemma3 import Gemma3TextConfig

    torch.manual_seed(0)
    text = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=16,
        max_position_embeddings=128,
    )
    vision = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
    )
    text_encoder = Gemma3ForConditionalGeneration(
        Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    )
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=32,
        rope_double_precision=False,
        rope_type="split",
    )
    connectors = LTX2TextConnectors(
        caption_channels=32,
        text_proj_in_factor=3,  # the encoder's layers + 1
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
    )
    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8,),
        decoder_block_out_channels=(8,),
        layers_per_block=(1,),
        decoder_layers_per_block=(1, 1),
        spatio_temporal_scaling=(True,),
        decoder_spatio_temporal_scaling=(True,),
        decoder_inject_noise=(False, False),
        downsample_type=("spatial",),
        upsample_residual=(False,),
        upsample_factor=(1,),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=8,
    )
    vocoder = LTX2Vocoder(
        in_channels=16,  # output channels x mel bins of the audio VAE
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[4, 4],
        upsample_factors=[2, 2],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=16000,
    )
    return LTX2ImageToVideoPipeline(
        transformer=transformer,
        vae=vae,
        audio_vae=audio_vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=word_tokenizer(),
        connectors=connectors,
        vocoder=vocoder,
    )


def ltx_upsampler(vae: Any) -> Any:
    """LTX-Video's latent upsampler (2x in space) in miniature, over ``vae``."""
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(1)
    upsampler = LTXLatentUpsamplerModel(
        in_channels=vae.config.latent_channels, mid_channels=32, num_blocks_per_stage=1
    )
    return LTXLatentUpsamplePipeline(vae=vae, latent_upsampler=upsampler)


BUILDERS: dict[str, Callable[[], Any]] = {
    "wan_ti2v": wan_ti2v,
    "wan_i2v": wan_i2v,
    "ltx": ltx,
    "ltx2": ltx2,
}


def save_tiny(kind: str, directory: Path) -> Path:
    """Build the tiny pipeline for an engine kind and save it in diffusers layout."""
    BUILDERS[kind]().save_pretrained(directory)
    return directory


def save_tiny_lora(transformer: Any, path: Path, seed: int) -> Path:
    """A random rank-4 LoRA over ``transformer``'s attention projections, saved as one
    peft-format ``.safetensors`` file (the layout diffusers' ``save_lora_weights`` writes)."""
    from diffusers import WanImageToVideoPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    config = LoraConfig(
        r=4,
        lora_alpha=4,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        init_lora_weights=False,  # random B as well as A: the LoRA changes the output
    )
    transformer.add_adapter(config, adapter_name="tiny")
    layers = get_peft_model_state_dict(transformer, adapter_name="tiny")
    transformer.delete_adapters("tiny")
    WanImageToVideoPipeline.save_lora_weights(
        path.parent, transformer_lora_layers=layers, weight_name=path.name
    )
    return path


def to_original_wan_lora(peft_file: Path, out: Path) -> Path:
    """The same LoRA in the original Wan / ComfyUI key layout that LightX2V's files use
    (``diffusion_model.blocks.N.self_attn.q.lora_down.weight``, ``lora_up``, ``alpha``)."""
    from safetensors.torch import load_file, save_file

    names = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
    converted = {}
    for key, tensor in load_file(str(peft_file)).items():
        # transformer.blocks.N.attn1.to_q.lora_A.weight
        _, _, block, attention, rest = key.split(".", 4)
        layer, _, kind = rest.rpartition(".lora_")
        module = "self_attn" if attention == "attn1" else "cross_attn"
        prefix = f"diffusion_model.blocks.{block}.{module}"
        down = kind.startswith("A")
        converted[f"{prefix}.{names[layer]}.lora_{'down' if down else 'up'}.weight"] = tensor
        if down:
            converted[f"{prefix}.{names[layer]}.alpha"] = torch.tensor(float(tensor.shape[0]))
    save_file(converted, str(out))
    return out
