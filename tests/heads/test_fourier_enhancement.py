"""DepthMaster's Fourier Enhancement block: the formula of docs/methods.md written out with
functional ops, shapes on odd and even grids, sensitivity to high frequencies, dtypes, and its
place after the UNet's mid block."""
import gin
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from depthlab.heads.fourier_enhancement import FourierEnhancement
from depthlab.models.backbone import small_backbone
from depthlab.models.surgery import InsertAfter

from fiffdepth_helpers import one_thread  # noqa: F401  (the fixture)

check = settings(max_examples=50, deadline=None, derandomize=True, database=None)
pytestmark = pytest.mark.usefixtures("one_thread")


def block(channels: int = 4, seed: int = 0, **kwargs) -> FourierEnhancement:
    torch.manual_seed(seed)
    module = FourierEnhancement(channels, **kwargs).double()
    with torch.no_grad():  # non-zero biases everywhere, so a dropped bias shows
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return module


def reference(module: FourierEnhancement, h: torch.Tensor) -> torch.Tensor:
    """docs/methods.md's formula, independently of the module's methods."""
    m = module
    x0 = F.group_norm(h, m.norm.num_groups, m.norm.weight, m.norm.bias, eps=1e-5)
    a = F.silu(F.conv2d(x0, m.frequency_in.weight, m.frequency_in.bias, padding=1))
    spectrum = torch.fft.rfft2(a, norm="ortho")
    amplitude = F.silu(F.conv2d(spectrum.abs(), m.amplitude.weight, m.amplitude.bias, padding=1))
    phase = F.silu(F.conv2d(spectrum.angle(), m.phase.weight, m.phase.bias, padding=1))
    restored = torch.fft.irfft2(amplitude * torch.exp(1j * phase), s=a.shape[-2:], norm="ortho")
    xf = F.conv2d(restored + a, m.frequency_out.weight, m.frequency_out.bias)
    hidden = F.silu(F.conv2d(x0, m.spatial_in.weight, m.spatial_in.bias, padding=1))
    xs = F.conv2d(hidden, m.spatial_out.weight, m.spatial_out.bias, padding=1) + x0
    return F.conv2d(torch.cat([xs, xf], 1), m.fuse.weight, m.fuse.bias)


@pytest.mark.parametrize("size", [(5, 7), (8, 8), (6, 9), (7, 6), (1, 1)])
def test_matches_the_formula_and_keeps_the_shape(size):
    module = block()
    h = torch.randn(2, 4, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = module(h)
    assert out.shape == h.shape and out.dtype == torch.float64
    assert torch.allclose(out, reference(module, h), rtol=1e-10, atol=1e-12)


@check
@given(height=st.integers(1, 9), width=st.integers(1, 9), batch=st.integers(1, 2))
def test_keeps_shapes_on_any_grid(height, width, batch):
    h = torch.randn(batch, 8, height, width, dtype=torch.float64)
    assert block(8, groups=4)(h).shape == (batch, 8, height, width)  # 2 channels a group: 1x1 ok


def test_layers():
    module = FourierEnhancement(16)
    assert module.norm.num_groups == 8 and module.norm.num_channels == 16  # default groups=8
    assert FourierEnhancement(4).norm.num_groups == 4  # min(groups, channels)
    assert FourierEnhancement(16, groups=2).norm.num_groups == 2
    for name in ("frequency_in", "amplitude", "phase", "spatial_in", "spatial_out"):
        conv = getattr(module, name)
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == \
            (16, 16, (3, 3), (1, 1))
    assert (module.frequency_out.in_channels, module.frequency_out.kernel_size) == (16, (1, 1))
    assert (module.fuse.in_channels, module.fuse.out_channels, module.fuse.kernel_size) == \
        (32, 16, (1, 1))


def test_about_79m_parameters_at_sd2_width():
    # Five 3x3 convs C -> C, a 1x1 C -> C, a 1x1 2C -> C, GroupNorm: at C = 1280,
    # 5 (9 C^2 + C) + (C^2 + C) + (2 C^2 + C) + 2 C = 78,654,720.
    with torch.device("meta"):
        module = FourierEnhancement(1280)
    assert sum(p.numel() for p in module.parameters()) == 78_654_720


def high_frequency_pair(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two inputs whose 2-D spectra agree at the low frequencies (|k_y|, |k_x| <= 1) and differ
    at the others."""
    generator = torch.Generator().manual_seed(2)
    base = torch.randn(1, 4, *size, generator=generator, dtype=torch.float64)
    noise = torch.fft.fft2(torch.randn(1, 4, *size, generator=generator, dtype=torch.float64))
    ky = torch.fft.fftfreq(size[0], 1.0 / size[0]).abs()[:, None]
    kx = torch.fft.fftfreq(size[1], 1.0 / size[1]).abs()[None, :]
    high = torch.fft.ifft2(torch.where((ky <= 1) & (kx <= 1), 0, noise)).real
    return base, base + high


@pytest.mark.parametrize("size", [(5, 7), (8, 8), (6, 9)])
def test_sees_a_change_of_the_high_frequencies_only(size):
    first, second = high_frequency_pair(size)
    spectra = torch.fft.fft2(first), torch.fft.fft2(second)
    low = (slice(None), slice(None), [0, 1, -1])
    assert torch.allclose(spectra[0][low][..., [0, 1, -1]], spectra[1][low][..., [0, 1, -1]])
    assert not torch.allclose(spectra[0], spectra[1])
    module = block()
    assert (module(first) - module(second)).abs().max() > 1e-3
    # The frequency branch alone carries it: with the spatial branch's half of the fuse zeroed.
    with torch.no_grad():
        module.fuse.weight[:, :4] = 0
    assert (module(first) - module(second)).abs().max() > 1e-3
    x0 = module.norm(first), module.norm(second)
    assert (module.frequency(x0[0]) - module.frequency(x0[1])).abs().max() > 1e-3


def test_the_spectrum_is_modulated():
    # Zero amplitude and phase weights, biases -1 and 0: A = SiLU(-1) = c and P = 0 at every
    # frequency, so A exp(iP) is the constant spectrum c, whose ortho inverse on an h x w grid is
    # an impulse c sqrt(h w) at pixel (0, 0): a' = a + that impulse (frequency_out the identity).
    module = block()
    with torch.no_grad():
        for conv, bias in ((module.amplitude, -1.0), (module.phase, 0.0)):
            conv.weight.zero_()
            conv.bias.fill_(bias)
        module.frequency_out.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        module.frequency_out.bias.zero_()
    x0 = torch.randn(1, 4, 4, 6, dtype=torch.float64)
    a = F.silu(module.frequency_in(x0))
    impulse = torch.zeros_like(a)
    impulse[..., 0, 0] = F.silu(torch.tensor(-1.0)).item() * (4 * 6) ** 0.5
    assert torch.allclose(module.frequency(x0), a + impulse, atol=1e-12)


def test_constant_input_has_finite_gradients():
    # GroupNorm maps a constant to 0; the spectrum is then zero but at DC, where angle and abs
    # have no derivative: the gradients must stay finite.
    module = block().float()
    h = torch.full((1, 4, 4, 5), 3.0, requires_grad=True)
    module(h).square().sum().backward()
    assert torch.isfinite(h.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_bfloat16_features_stay_bfloat16():
    module = block()
    h = torch.randn(1, 4, 5, 7, dtype=torch.float64)
    out = module.to(torch.bfloat16)(h.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == h.shape
    assert torch.allclose(out.double(), module.double()(h), rtol=0.1, atol=0.1)


def test_runs_under_autocast():
    module = block().float()
    h = torch.randn(1, 4, 6, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(h)
    assert out.shape == h.shape and torch.isfinite(out).all()
    assert torch.allclose(out.float(), module(h), rtol=0.1, atol=0.1)


def test_inserted_after_the_mid_block():
    gin.clear_config()
    try:
        gin.parse_config("InsertAfter.at = 'mid_block'\n"
                         "InsertAfter.module = @FourierEnhancement\n"
                         "InsertAfter.name = 'fourier'\n")
        backbone = small_backbone(block_out_channels=(16, 32), attention_head_dim=4,
                                  norm_num_groups=8, cross_attention_dim=8,
                                  patches=[InsertAfter()])
    finally:
        gin.clear_config()
    fourier = backbone.unet.mid_block.fourier
    assert isinstance(fourier, FourierEnhancement) and fourier.norm.num_channels == 32
    assert fourier.norm.num_groups == 8
