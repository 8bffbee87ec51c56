"""DINOv2 feature encoders: tokens equal the libraries' own final normalised patch tokens, any
input size lands on the patch grid, the encoders are frozen and built once, and bad paths fail
with errors that name them."""
from __future__ import annotations

import gin
import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from transformers import Dinov2Model

from depthlab.config import build
from depthlab.encoders import FeatureEncoder, dinov2_encoder, grid_input_size, timm_dinov2_encoder
from depthlab.errors import UserError
from depthlab.models.freezing import frozen_parameter_owners, is_frozen
from depthlab.teachers.base import clear_shared_instances
from depthlab.testing.tiny_encoders import (TIMM_IMAGE_SIZE, TINY_TIMM, save_dinov2_dir,
                                            save_timm_dinov2_weights)


@pytest.fixture(autouse=True)
def fresh_cache():
    torch.manual_seed(0)
    clear_shared_instances()
    yield
    clear_shared_instances()
    gin.clear_config()


@pytest.fixture(scope="module")
def dinov2_dir(tmp_path_factory):
    return save_dinov2_dir(tmp_path_factory.mktemp("dinov2"))


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory):
    return save_timm_dinov2_weights(tmp_path_factory.mktemp("timm") / "vits14.safetensors")


def _timm(weights, model_name="vit_small_patch14_dinov2") -> FeatureEncoder:
    return timm_dinov2_encoder(model_name, str(weights), image_size=TIMM_IMAGE_SIZE,
                               model_kwargs=TINY_TIMM)


def _normalised(rgb: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (rgb - mean) / std


def test_transformers_tokens_are_the_models_last_hidden_state_without_cls(dinov2_dir):
    encoder = dinov2_encoder(str(dinov2_dir))
    assert encoder.channels == 32 and encoder.patch_size == 14
    rgb = torch.rand(2, 3, 42, 56)
    model = Dinov2Model.from_pretrained(dinov2_dir).eval()
    with torch.no_grad():
        hidden = model(pixel_values=_normalised(rgb)).last_hidden_state
    expected = hidden[:, 1:].reshape(2, 3, 4, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(encoder(rgb), expected)


def test_timm_tokens_are_forward_features_without_prefix_tokens(timm_weights):
    encoder = _timm(timm_weights)
    assert encoder.channels == 32 and encoder.patch_size == 14
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0,
                              dynamic_img_size=True, img_size=TIMM_IMAGE_SIZE, **TINY_TIMM)
    model.load_state_dict(load_file(str(timm_weights)))
    rgb = torch.rand(2, 3, 42, 56)
    with torch.no_grad():
        features = model.eval().forward_features(_normalised(rgb))
    expected = features[:, 1:].reshape(2, 3, 4, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(encoder(rgb), expected)


def test_timm_register_tokens_are_dropped(tmp_path):
    weights = save_timm_dinov2_weights(tmp_path / "reg4.safetensors",
                                       "vit_small_patch14_reg4_dinov2")
    encoder = _timm(weights, "vit_small_patch14_reg4_dinov2")
    assert encoder.model.num_prefix_tokens == 5
    assert encoder(torch.rand(1, 3, 28, 42)).shape == (1, 32, 2, 3)


@pytest.mark.parametrize("size", [(30, 45), (20, 8), (70, 71)])
def test_any_input_size_lands_on_the_nearest_patch_grid(dinov2_dir, timm_weights, size):
    expected = tuple(side // 14 for side in grid_input_size(*size, 14))
    assert expected == (max(1, round(size[0] / 14)), max(1, round(size[1] / 14)))
    for encoder in (dinov2_encoder(str(dinov2_dir)), _timm(timm_weights)):
        tokens = encoder(torch.rand(2, 3, *size))
        assert tokens.shape == (2, 32, *expected) and torch.isfinite(tokens).all()


def test_encoders_are_frozen_and_pass_no_gradient(dinov2_dir, timm_weights):
    for encoder in (dinov2_encoder(str(dinov2_dir)), _timm(timm_weights)):
        encoder.train()
        assert is_frozen(encoder) and not encoder.training
        assert not any(module.training for module in encoder.modules())
        parameters = list(encoder.parameters())
        assert parameters and not any(p.requires_grad for p in parameters)
        assert set(frozen_parameter_owners(encoder)) == {id(p) for p in parameters}
        projector = torch.nn.Conv2d(32, 32, 1)
        tokens = encoder(torch.rand(1, 3, 28, 28, requires_grad=True))
        assert not tokens.requires_grad
        loss = torch.nn.functional.mse_loss(projector(torch.randn(1, 32, 2, 2)), tokens)
        loss.backward()
        assert projector.weight.grad is not None
        assert all(p.grad is None for p in parameters)


def test_same_arguments_build_one_encoder(dinov2_dir, timm_weights, tmp_path):
    first = dinov2_encoder(str(dinov2_dir))
    assert dinov2_encoder(str(dinov2_dir) + "/") is first
    assert dinov2_encoder(str(save_dinov2_dir(tmp_path / "other", seed=1))) is not first
    timm_first = _timm(timm_weights)
    assert _timm(timm_weights) is timm_first
    assert timm_dinov2_encoder("vit_small_patch14_dinov2", str(timm_weights),
                               image_size=TIMM_IMAGE_SIZE,
                               model_kwargs={**TINY_TIMM, "init_values": 1.0}) is not timm_first


def test_other_weights_give_other_tokens(dinov2_dir, timm_weights, tmp_path):
    rgb = torch.rand(1, 3, 28, 28)
    other_dir = save_dinov2_dir(tmp_path / "other", seed=1)
    assert not torch.allclose(dinov2_encoder(str(dinov2_dir))(rgb),
                              dinov2_encoder(str(other_dir))(rgb))
    other_weights = save_timm_dinov2_weights(tmp_path / "other.safetensors", seed=1)
    assert not torch.allclose(_timm(timm_weights)(rgb), _timm(other_weights)(rgb))


def test_timm_reads_torch_state_dicts_and_resamples_position_embeddings(timm_weights, tmp_path):
    pth = tmp_path / "vits14.pth"
    torch.save(load_file(str(timm_weights)), pth)
    rgb = torch.rand(1, 3, 28, 42)
    torch.testing.assert_close(_timm(pth)(rgb), _timm(timm_weights)(rgb))
    # A checkpoint made for 28-pixel images loads into a model made for 42 (as timm's
    # pretrained loading does), so `image_size` need not match the file exactly.
    resized = timm_dinov2_encoder("vit_small_patch14_dinov2", str(timm_weights), image_size=42,
                                  model_kwargs=TINY_TIMM)
    assert resized(rgb).shape == (1, 32, 2, 3)


def test_missing_or_wrong_transformers_directory_is_a_user_error(tmp_path,
                                                                 tiny_depth_anything_dir):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=str(missing)):
        dinov2_encoder(str(missing))
    no_weights = tmp_path / "config_only"
    save_dinov2_dir(no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(UserError, match=f"{no_weights}.*no weights"):
        dinov2_encoder(str(no_weights))
    with pytest.raises(UserError, match=f"{tiny_depth_anything_dir}.*depth_anything.*not DINOv2"):
        dinov2_encoder(str(tiny_depth_anything_dir))


def test_weights_that_do_not_fit_the_config_are_a_user_error(tmp_path):
    root = save_dinov2_dir(tmp_path / "bad")
    save_file({"unrelated.weight": torch.zeros(2)}, str(root / "model.safetensors"))
    with pytest.raises(UserError, match=f"{root}.*missing keys"):
        dinov2_encoder(str(root))
    (root / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match=str(root)):
        dinov2_encoder(str(root))


def test_missing_or_unfitting_timm_weights_are_a_user_error(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(UserError, match=str(missing)):
        _timm(missing)
    wide = save_timm_dinov2_weights(tmp_path / "wide.safetensors", embed_dim=48, num_heads=2)
    with pytest.raises(UserError, match=f"{wide}.*do not fit"):
        _timm(wide)
    partial = tmp_path / "partial.safetensors"
    save_file({"cls_token": torch.zeros(1, 1, 32)}, str(partial))
    with pytest.raises(UserError, match=f"{partial}.*do not fit"):
        _timm(partial)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=str(garbage)):
        _timm(garbage)


def test_gin_binds_the_encoders(dinov2_dir, timm_weights):
    gin.parse_config(["ENCODER = @dinov2_encoder()",
                      f"dinov2_encoder.pretrained_dir = '{dinov2_dir}'",
                      f"timm_dinov2_encoder.weights_file = '{timm_weights}'",
                      f"timm_dinov2_encoder.image_size = {TIMM_IMAGE_SIZE}",
                      f"timm_dinov2_encoder.model_kwargs = {TINY_TIMM!r}"])
    assert build(dinov2_encoder, "encoder") is dinov2_encoder(str(dinov2_dir))
    assert build(timm_dinov2_encoder, "encoder") is _timm(timm_weights)


def test_an_unset_directory_is_a_user_error():
    with pytest.raises(UserError, match="dinov2_encoder"):
        build(dinov2_encoder, "encoder")
