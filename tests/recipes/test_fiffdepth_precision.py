"""Under bf16 autocast FiffDepth's noise-schedule arithmetic and losses still run in float32."""
import torch

from depthlab.data.batch import Batch, LabelledBatch, UnlabelledBatch

from fiffdepth_helpers import make_recipe


def bf16_batch() -> Batch:
    generator = torch.Generator().manual_seed(3)
    return Batch(LabelledBatch(torch.rand(2, 3, 16, 16, generator=generator),
                               torch.rand(2, 1, 16, 16, generator=generator) * 4 + 1,
                               torch.ones(2, 1, 16, 16, dtype=torch.bool)),
                 UnlabelledBatch(torch.rand(2, 3, 16, 16, generator=generator)))


def test_the_first_timestep_still_adds_noise_under_bf16():
    recipe = make_recipe(timestep_range=(1, 2))  # every trajectory sample at t = 1
    abar = float(recipe.schedule.alphas_cumprod[1])
    assert torch.tensor(abar, dtype=torch.bfloat16).item() == 1.0  # what bf16 would compute with
    with torch.autocast("cpu", dtype=torch.bfloat16):
        synthetic = recipe._synthetic_inputs(bf16_batch().labelled)
        assert synthetic["x0"].dtype == torch.bfloat16  # the bug's precondition holds on CPU
        noisy, timesteps, target = recipe._trajectory_sample(synthetic,
                                                             torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    blended = 0.5 * synthetic["x0"].float() + 0.5 * synthetic["label"].float()
    noise = torch.randn(blended.shape, generator=generator)
    assert timesteps.tolist() == [1, 1] and noisy.dtype == target.dtype == torch.float32
    expected = abar ** 0.5 * blended + (1 - abar) ** 0.5 * noise
    torch.testing.assert_close(noisy, expected, rtol=1e-5, atol=1e-6)
    assert (noisy - blended).abs().mean() > 0.01  # sqrt(1 - abar_1) ~ 0.04 of unit noise


def test_losses_are_float32_under_bf16():
    recipe = make_recipe()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = recipe.losses(bf16_batch(), torch.Generator().manual_seed(0))
    assert {name: term.dtype for name, term in out.terms.items()} == {
        "t0": torch.float32, "trajectory": torch.float32, "t_minus_1": torch.float32}
    assert out.total.dtype == torch.float32
