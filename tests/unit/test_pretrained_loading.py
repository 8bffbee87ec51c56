"""The paper recipe's loaders, exercised on tiny random models written with save_pretrained."""
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from depthlab.errors import UserError
from depthlab.models.backbone import sd2_backbone
from depthlab.models.codec import pretrained_codec
from depthlab.models.schedule import ddpm_schedule
from depthlab.teachers.base import clear_shared_instances
from depthlab.teachers.depth_anything import depth_anything_v2


def test_sd2_backbone_loads_unet_and_empty_prompt(tiny_sd2_dir):
    backbone = sd2_backbone(pretrained_dir=str(tiny_sd2_dir))
    reference = UNet2DConditionModel.from_pretrained(tiny_sd2_dir, subfolder="unet")
    pairs = zip(backbone.unet.state_dict().items(), reference.state_dict().items())
    for (name, p), (_, q) in pairs:
        assert torch.equal(p, q), name
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd2_dir, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(tiny_sd2_dir, subfolder="text_encoder")
    ids = tokenizer("", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(backbone.prompt_embedding, encoder(ids)[0])
    padded = sd2_backbone(pretrained_dir=str(tiny_sd2_dir), pad_prompt=True)
    assert padded.prompt_embedding.shape[1] == tokenizer.model_max_length == 77
    latent = torch.randn(2, 4, 8, 8)
    assert backbone.prompt_embedding.shape[1] == 2  # "" unpadded: <|startoftext|><|endoftext|>
    for t in (0.0, -1.0, 999.0):
        assert backbone(latent, t).shape == latent.shape


def test_pretrained_codec_follows_sd_conventions(tiny_sd2_dir):
    codec = pretrained_codec(pretrained_dir=str(tiny_sd2_dir))
    vae = AutoencoderKL.from_pretrained(tiny_sd2_dir, subfolder="vae")
    depth = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        latent = codec.encode_depth(depth)
        expected = vae.encode(depth.repeat(1, 3, 1, 1)).latent_dist.mean * 0.18215
        assert torch.allclose(latent, expected, atol=1e-6)
        decoded = codec.decode_depth(latent)
        assert torch.allclose(decoded, vae.decode(latent / 0.18215).sample.mean(1, keepdim=True),
                              atol=1e-6)
    assert codec.downsample_factor == 8 and not any(p.requires_grad for p in codec.parameters())


def test_decoder_keeps_gradients_flowing(tiny_sd2_dir):
    codec = pretrained_codec(pretrained_dir=str(tiny_sd2_dir))
    latent = torch.randn(1, 4, 4, 4, requires_grad=True)
    codec.decode_depth(latent).sum().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0


def test_scheduler_from_directory_is_v_prediction(tiny_sd2_dir):
    schedule = ddpm_schedule(pretrained_dir=str(tiny_sd2_dir))
    assert schedule.config.prediction_type == "v_prediction"
    assert schedule.config.num_train_timesteps == 1000


def test_depth_anything_teacher_is_built_once(tiny_depth_anything_dir):
    clear_shared_instances()
    first = depth_anything_v2(pretrained_dir=str(tiny_depth_anything_dir), input_size=28)
    second = depth_anything_v2(pretrained_dir=str(tiny_depth_anything_dir), input_size=28)
    assert first is second
    out = first(torch.rand(2, 3, 30, 45))
    assert out.shape == (2, 1, 30, 45) and first.output_kind.value == "disparity"


@pytest.mark.parametrize("loader", [sd2_backbone, pretrained_codec, depth_anything_v2])
def test_missing_directory_is_a_clear_error(loader, tmp_path):
    with pytest.raises(UserError, match="Expected a local directory"):
        loader(pretrained_dir=str(tmp_path / "nowhere"))
