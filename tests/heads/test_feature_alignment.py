"""DepthMaster's Feature Alignment head: projector widths, per-position projection, bicubic resize
of the encoder tokens to the mid-block grid, no gradient into the encoder, the loss by binding."""
import gin
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.errors import UserError
from depthlab.heads.feature_alignment import FeatureAlignment, resize_tokens
from depthlab.losses.alignment import alignment_cosine, alignment_kl


def head(**kwargs) -> FeatureAlignment:
    torch.manual_seed(0)
    return FeatureAlignment(**{"unet_channels": 8, "encoder_channels": 12, **kwargs}).double()


def features(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def widths(module: FeatureAlignment) -> list:
    return [(layer.in_features, layer.out_features) if isinstance(layer, nn.Linear)
            else type(layer).__name__ for layer in module.projector]


def test_projector_widths():
    # SD2's shape at a small size: 1280 -> 1536 -> 1536 -> 1536 becomes 8 -> 12 -> 12 -> 12.
    assert widths(head()) == [(8, 12), "SiLU", (12, 12), "SiLU", (12, 12)]
    assert widths(head(hidden=5)) == [(8, 5), "SiLU", (5, 5), "SiLU", (5, 12)]
    with torch.device("meta"):
        sd2 = FeatureAlignment(unet_channels=1280, encoder_channels=1536)
    assert widths(sd2) == [(1280, 1536), "SiLU", (1536, 1536), "SiLU", (1536, 1536)]


def test_projection_is_the_mlp_at_every_position():
    module = head()
    unet = features(2, 8, 3, 4)
    projected = module.project(unet)
    assert projected.shape == (2, 12, 3, 4)
    for i, j in ((0, 0), (2, 3), (1, 2)):
        assert torch.allclose(projected[:, :, i, j], module.projector(unet[:, :, i, j]))


def test_loss_is_the_kl_to_the_bicubically_resized_tokens():
    module = head()
    unet, tokens = features(2, 8, 3, 4), features(2, 12, 5, 7, seed=2)
    resized = F.interpolate(tokens, size=(3, 4), mode="bicubic", align_corners=False)
    expected = alignment_kl(module.project(unet), resized)
    assert module.loss_name == "alignment_kl" and module.loss_fn is alignment_kl
    assert module(unet, tokens).item() == pytest.approx(expected.item(), rel=1e-12)


def test_resize_tokens():
    tokens = features(1, 3, 5, 7)
    expected = F.interpolate(tokens, size=(2, 3), mode="bicubic", align_corners=False)
    assert torch.equal(resize_tokens(tokens, (2, 3)), expected)
    assert torch.equal(resize_tokens(tokens, [2, 3]), expected)
    assert resize_tokens(tokens, (5, 7)) is tokens  # already on the grid: untouched
    assert resize_tokens(tokens, [5, 7]) is tokens
    up = resize_tokens(tokens, (10, 14))
    assert torch.equal(up, F.interpolate(tokens, size=(10, 14), mode="bicubic",
                                         align_corners=False))


def test_tokens_already_on_the_grid_are_used_as_they_are():
    module = head()
    unet, tokens = features(1, 8, 3, 4), features(1, 12, 3, 4, seed=2)
    assert module(unet, tokens).item() == pytest.approx(
        alignment_kl(module.project(unet), tokens).item(), rel=1e-12)


def test_no_gradient_reaches_the_encoder_tokens():
    module = head()
    unet = features(1, 8, 3, 4).requires_grad_(True)
    tokens = features(1, 12, 6, 8, seed=2).requires_grad_(True)
    module(unet, tokens).backward()
    assert tokens.grad is None
    assert unet.grad is not None and unet.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    # Tokens on the grid already (no resize) are detached too.
    tokens = features(1, 12, 3, 4, seed=2).requires_grad_(True)
    module(unet, tokens).backward()
    assert tokens.grad is None


def test_loss_chosen_by_binding():
    gin.clear_config()
    try:
        gin.parse_config("FeatureAlignment.loss = 'alignment_cosine'")
        torch.manual_seed(0)
        module = FeatureAlignment(unet_channels=8, encoder_channels=12).double()
    finally:
        gin.clear_config()
    assert module.loss_name == "alignment_cosine" and module.loss_fn is alignment_cosine
    unet, tokens = features(1, 8, 3, 4), features(1, 12, 5, 7, seed=2)
    expected = alignment_cosine(module.project(unet), resize_tokens(tokens, (3, 4)))
    assert module(unet, tokens).item() == pytest.approx(expected.item(), rel=1e-12)
    assert module(unet, tokens).item() != pytest.approx(
        alignment_kl(module.project(unet), resize_tokens(tokens, (3, 4))).item())


def test_unknown_loss_name_is_a_user_error():
    with pytest.raises(UserError, match="alignment_kll"):
        FeatureAlignment(unet_channels=8, encoder_channels=12, loss="alignment_kll")


def test_token_width_mismatch_is_a_user_error():
    with pytest.raises(UserError, match="10 channels.*outputs 12") as error:
        head()(features(1, 8, 3, 4), features(1, 10, 3, 4))
    assert "bind FeatureAlignment.encoder_channels to the encoder's width" in str(error.value)
