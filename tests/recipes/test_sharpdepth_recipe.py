"""SharpDepth's recipe on tiny blocks: what trains and what stays frozen, the gating pass's
network, the ablation switches, the EMA through the loop and `--resume`."""
from __future__ import annotations

import functools

import pytest
import torch
from safetensors.torch import load_file

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.data.mixing import MixedBatches
from depthlab.errors import UserError
from depthlab.models.ema import EMA
from depthlab.models.modes import DirectLatentMode, LotusGMode
from depthlab.recipes.sharpdepth import SharpDepth
from depthlab.train.loop import Trainer

from fiffdepth_helpers import one_thread  # noqa: F401  (the fixture)
from sharpdepth_helpers import Photos, image_batch, make_recipe, tiny_backbone, tiny_model, vector

pytestmark = pytest.mark.usefixtures("one_thread")


def trainer_for(recipe: SharpDepth, run_dir, steps: int, **kwargs) -> Trainer:
    run_dir.mkdir(parents=True, exist_ok=True)
    data = MixedBatches(unlabelled=Photos(), batch_size=2)
    options = dict(data=data, steps=steps, device="cpu", eval_sets={}, progress=False,
                   log_every=1, image_every=0, checkpoint_every=1000)
    options.update(kwargs)
    return Trainer(run_dir=run_dir, recipe=recipe, **options)


def test_only_the_student_trains(tmp_path):
    recipe = make_recipe()
    trainer = trainer_for(recipe, tmp_path / "run", steps=1)
    assert set(trainer.trained) == {f"model.backbone.{n}"
                                    for n, _ in recipe.model.backbone.named_parameters()}
    student, teacher = vector(recipe.model.backbone), vector(recipe.diffusion_teacher)
    metric = vector(recipe.mode.metric_teacher)
    trainer.run()
    assert not torch.equal(vector(recipe.model.backbone), student)
    assert torch.equal(vector(recipe.diffusion_teacher), teacher)
    assert torch.equal(vector(recipe.mode.metric_teacher), metric)
    frozen = [*recipe.diffusion_teacher.parameters(), *recipe.mode.metric_teacher.parameters(),
              *recipe.ema.parameters()]
    assert all(p.grad is None for p in frozen)
    assert not any(p.requires_grad for p in [*recipe.diffusion_teacher.parameters(),
                                             *recipe.ema.parameters()])


def test_a_step_sends_gradients_to_the_student_alone():
    recipe = make_recipe()
    step = recipe.losses(image_batch(), torch.Generator().manual_seed(0))
    step.total.backward()
    assert set(step.terms) == {"sds", "reconstruction", "gated_fraction"}
    assert all(p.grad is not None for p in recipe.model.backbone.parameters() if p.requires_grad)
    assert all(p.grad is None for p in recipe.diffusion_teacher.parameters())
    assert all(p.grad is None for p in recipe.mode.metric_teacher.parameters())
    total = step.terms["sds"] + 0.4 * step.terms["reconstruction"]
    torch.testing.assert_close(step.total, total)


def test_the_gating_pass_runs_the_ema_or_the_teacher():
    recipe = make_recipe()
    assert recipe.gating_backbone() is recipe.ema.module
    ablation = make_recipe(gating_model="teacher", ema=None)
    assert ablation.gating_backbone() is ablation.diffusion_teacher


def test_gating_by_the_ema_needs_an_ema():
    with pytest.raises(UserError, match="SharpDepth.ema = @EMA"):
        make_recipe(ema=None)


def test_the_reconstruction_weighting_switch_changes_the_term():
    batch, terms = image_batch(), {}
    for weighting in ("error", "inverse_error"):
        recipe = make_recipe(reconstruction_weighting=weighting)
        with torch.no_grad():
            terms[weighting] = recipe.losses(batch, torch.Generator().manual_seed(0)).terms
    assert terms["error"]["sds"] == terms["inverse_error"]["sds"]
    assert terms["error"]["reconstruction"] != terms["inverse_error"]["reconstruction"]


def test_labels_are_never_read():
    recipe = make_recipe()
    images = image_batch().unlabelled.rgb
    poisoned = LabelledBatch(images, torch.full((2, 1, 16, 16), float("nan")),
                             torch.ones(2, 1, 16, 16, dtype=torch.bool))
    with torch.no_grad():
        step = recipe.losses(Batch(labelled=poisoned), torch.Generator().manual_seed(0))
    assert torch.isfinite(step.total)


@pytest.mark.parametrize("options, message", [
    ({"gating_model": "student"}, "SharpDepth.gating_model"),
    ({"reconstruction_weighting": "none"}, "SharpDepth.reconstruction_weighting")])
def test_unknown_switches_are_refused(options, message):
    with pytest.raises(UserError, match=message):
        make_recipe(**options)


def test_the_model_must_use_the_sharpdepth_mode():
    model = tiny_model()
    model.mode = DirectLatentMode()
    with pytest.raises(UserError, match="gin/inference/sharpdepth.gin"):
        make_recipe(model=model)


def test_the_teacher_must_match_the_student():
    with pytest.raises(UserError, match="same architecture"):
        make_recipe(diffusion_teacher=tiny_backbone().__class__(
            tiny_backbone().unet.__class__(in_channels=4, out_channels=4,
                                           block_out_channels=(16, 32), norm_num_groups=8,
                                           cross_attention_dim=8, attention_head_dim=4,
                                           down_block_types=("DownBlock2D",) * 2,
                                           up_block_types=("UpBlock2D",) * 2),
            torch.zeros(1, 4, 8)))


def test_the_student_is_evaluated_and_the_references_sit_beside_it():
    recipe = make_recipe(diffusion_mode=LotusGMode())
    recipe.after_optimizer_step(1)  # the EMA now holds an update
    assert recipe.evaluated_model() is recipe.model
    assert make_recipe(evaluate_ema=True).evaluated_model() is not None
    references = recipe.reference_models()
    assert references["metric_teacher"] is recipe.mode.metric_teacher
    assert references["diffusion_model"].backbone is recipe.diffusion_teacher
    assert set(make_recipe().reference_models()) == {"metric_teacher"}


def test_the_ema_restarts_from_initialised_weights(tmp_path):
    recipe = make_recipe()
    with torch.no_grad():
        for parameter in recipe.model.backbone.parameters():
            parameter.add_(1.0)  # as InitialiseFrom would load another run
    trainer_for(recipe, tmp_path / "run", steps=1).start_fresh()
    assert torch.equal(vector(recipe.ema.module), vector(recipe.model.backbone))
    assert recipe.ema.updates == 0


def test_the_ema_survives_resume_bit_for_bit(tmp_path):
    def make(run):
        torch.manual_seed(0)
        recipe = make_recipe(ema=functools.partial(EMA, decay=0.9, start_after=1, every=2))
        return recipe, trainer_for(recipe, run, steps=4, checkpoint_every=2)

    reference, trainer = make(tmp_path / "reference")
    trainer.start_fresh()
    trainer.run()
    _, trainer = make(tmp_path / "interrupted")
    trainer.start_fresh()
    trainer.steps = 2  # stopped half-way, as a killed run
    trainer.run()
    resumed, trainer = make(tmp_path / "interrupted")
    trainer.resume_from(tmp_path / "interrupted" / "checkpoints" / "step-00000002")
    assert resumed.ema.updates == 1
    trainer.run()
    final = "checkpoints/step-00000004/extra.safetensors"
    expected, got = (load_file(str(root / final))
                     for root in (tmp_path / "reference", tmp_path / "interrupted"))
    assert set(got) == set(expected) and "ema.averaged.n_averaged" in got
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert torch.equal(vector(resumed.model.backbone), vector(reference.model.backbone))


def re_derived_terms(recipe: SharpDepth, batch: Batch, seed: int) -> dict[str, torch.Tensor]:
    """The step's two terms computed in plain torch from the same draws, in the recipe's order:
    the gating noise, the pure-noise draws, then the score-distillation noise."""
    generator = torch.Generator().manual_seed(seed)
    mode, codec = recipe.mode, recipe.model.codec
    rgb = batch.unlabelled.rgb
    with torch.no_grad():
        rgb_latent = recipe.model.encode_rgb(rgb)
        metric = 1.0 + 4.0 * rgb.mean(1, keepdim=True)  # BrightnessMetricTeacher
        low = metric.amin(dim=(1, 2, 3), keepdim=True)
        high = metric.amax(dim=(1, 2, 3), keepdim=True)
        normalised = 2 * (metric - low) / (high - low) - 1
        noise = torch.randn(rgb_latent.shape, generator=generator)
        gate = mode.gate(recipe.gating_backbone(), codec, rgb_latent, normalised, noise,
                         generator)
        student = mode.clean(recipe.model.backbone, rgb_latent, gate.latent)
        alpha_bar = float(mode.alpha_bar)
        eps = torch.randn(student.shape, generator=generator)
        noisy = alpha_bar ** 0.5 * student + (1 - alpha_bar) ** 0.5 * eps
        teacher = mode.clean(recipe.diffusion_teacher, rgb_latent, noisy)
        g = (1 - alpha_bar) * (student - teacher)
        decoded = codec.decode_depth(student)
        weight = gate.error if recipe.reconstruction_weighting == "error" else 1 - gate.error
    return {"sds": 0.5 * g.square().mean(),
            "reconstruction": (weight * (decoded - normalised).abs()).sum() / weight.sum()}


@pytest.mark.parametrize("weighting", ["error", "inverse_error"])
def test_the_terms_match_a_plain_torch_re_derivation(weighting):
    recipe = make_recipe(reconstruction_weighting=weighting)
    recipe.mode.gating.pure_noise_probability = 0.5  # the draws must come from the generator
    batch = image_batch(batch=4)
    with torch.no_grad():
        step = recipe.losses(batch, torch.Generator().manual_seed(11))
    expected = re_derived_terms(recipe, batch, 11)
    for name in ("sds", "reconstruction"):
        torch.testing.assert_close(step.terms[name], expected[name], rtol=1e-4, atol=1e-7)
    assert step.terms["sds"] > 0


def test_images_join_both_parts_and_refuse_mismatched_sizes():
    unlabelled = image_batch(batch=2).unlabelled
    labelled = LabelledBatch(torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16),
                             torch.ones(1, 1, 16, 16, dtype=torch.bool))
    images = SharpDepth.images(Batch(labelled=labelled, unlabelled=unlabelled))
    assert torch.equal(images, torch.cat([unlabelled.rgb, labelled.rgb]))
    labelled = LabelledBatch(torch.rand(1, 3, 8, 16), torch.ones(1, 1, 8, 16),
                             torch.ones(1, 1, 8, 16, dtype=torch.bool))
    with pytest.raises(UserError, match=r"\(16, 16\) and \(8, 16\)"):
        SharpDepth.images(Batch(labelled=labelled, unlabelled=unlabelled))


def test_panels_show_prediction_metric_teacher_and_error(monkeypatch):
    recipe = make_recipe()
    decode = recipe.model.codec.decode_depth
    monkeypatch.setattr(recipe.model.codec, "decode_depth", lambda latent: 5.0 * decode(latent))
    with torch.no_grad():
        step = recipe.losses(image_batch(), torch.Generator().manual_seed(0), with_panels=True)
        plain = recipe.losses(image_batch(), torch.Generator().manual_seed(0))
    assert plain.panels == {}
    assert set(step.panels) == {"real/prediction", "real/metric_teacher", "real/gating_error"}
    teacher = step.panels["real/metric_teacher"]
    assert teacher.values.shape == (2, 1, 16, 16) and teacher.kind.value == "depth"
    for image in teacher.values:  # the normalised metric map, from [-1, 1] to [0, 1]
        assert image.min().item() == pytest.approx(0.0) and image.max().item() == pytest.approx(1)
    prediction = step.panels["real/prediction"]
    assert prediction.kind.value == "depth" and prediction.values.shape == (2, 1, 16, 16)
    # The decoded map (scaled past [-1, 1] here) is clipped before it is shown in [0, 1].
    assert prediction.values.min() == 0 and prediction.values.max() == 1
    error = step.panels["real/gating_error"]
    assert error.kind is None and error.values.shape == (2, 3, 16, 16)
    assert error.values.amax(dim=(1, 2, 3)).tolist() == [1.0, 1.0]  # each image's largest e


def test_the_ema_is_evaluated_when_asked():
    recipe = make_recipe(evaluate_ema=True)
    recipe.after_optimizer_step(1)
    assert recipe.evaluated_model().backbone is recipe.ema.module


def test_the_teacher_gates_even_when_an_ema_exists():
    recipe = make_recipe(gating_model="teacher")
    assert recipe.ema is not None and recipe.gating_backbone() is recipe.diffusion_teacher


def test_the_diffusion_reference_uses_the_students_codec_and_its_own_mode():
    mode = LotusGMode()
    reference = make_recipe(diffusion_mode=mode).reference_models()["diffusion_model"]
    assert reference.mode is mode and reference.codec is not None
    assert reference.output_kind.value == "depth"


def test_messages_name_the_choices():
    with pytest.raises(UserError, match="expected one of ema, teacher"):
        make_recipe(gating_model="student")
    with pytest.raises(UserError, match="expected one of error, inverse_error"):
        make_recipe(reconstruction_weighting="none")
    with pytest.raises(UserError, match=r"^SharpDepth.gating_model = 'ema' runs the gating pass "
                                        r"with the EMA student: bind"):
        make_recipe(ema=None)
    model = tiny_model()
    model.mode = DirectLatentMode()
    with pytest.raises(UserError, match="the model's mode is DirectLatentMode;"):
        make_recipe(model=model)
    with pytest.raises(UserError, match="^SharpDepth needs images"):
        SharpDepth.images(Batch())
