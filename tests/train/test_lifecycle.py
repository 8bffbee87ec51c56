"""The recipe lifecycle through the one loop: EMA, extra state, frozen modules, parameter groups,
optimizer and schedule blocks, gradient checkpointing and the evaluated model."""
from __future__ import annotations

import functools
import json
import math

import gin
import pytest
import torch
from safetensors.torch import load_file

from depthlab.errors import UserError
from depthlab.models.ema import EMA
from depthlab.models.weights import EVALUATED_FILE, load_model_weights
from depthlab.recipes.base import ParameterGroup
from depthlab.train.checkpoint import load_training_state

from train_helpers import TinyRecipe, tiny_model, tiny_trainer, vector


def ema_factory(**kwargs):
    return functools.partial(EMA, **kwargs)


def test_ema_updates_every_n_steps_from_its_start(tmp_path):
    recipe = TinyRecipe(ema=ema_factory(decay=0.5, start_after=2, every=3))
    trainer = tiny_trainer(tmp_path / "run", recipe, steps=9)
    snapshots = {}
    original = recipe.after_optimizer_step

    def snapshot_then_step(step: int) -> None:
        snapshots[step] = vector(recipe.model.backbone)
        original(step)

    recipe.after_optimizer_step = snapshot_then_step
    trainer.run()
    assert sorted(snapshots) == list(range(1, 10))
    # Due at steps 2, 5 and 8: the first copies, the others average with decay 0.5.
    expected = snapshots[2]
    for step in (5, 8):
        expected = 0.5 * expected + 0.5 * snapshots[step]
    assert recipe.ema.updates == 3
    torch.testing.assert_close(vector(recipe.ema.module), expected, rtol=0, atol=1e-7)
    assert not torch.equal(vector(recipe.ema.module), snapshots[9])


def test_ema_is_restored_bit_for_bit_on_resume(tmp_path):
    def make(run):
        torch.manual_seed(0)
        recipe = TinyRecipe(ema=ema_factory(decay=0.9, start_after=1, every=2))
        return recipe, tiny_trainer(run, recipe, steps=6, checkpoint_every=3)

    reference, trainer = make(tmp_path / "reference")
    trainer.run()
    interrupted, trainer = make(tmp_path / "interrupted")
    trainer.steps = 3  # stop half-way, as a killed run would
    trainer.run()
    resumed, trainer = make(tmp_path / "interrupted")
    trainer.resume_from(tmp_path / "interrupted" / "checkpoints" / "step-00000003")
    assert trainer.start_step == 3 and resumed.ema.updates == 2
    trainer.run()
    final = "checkpoints/step-00000006/extra.safetensors"
    expected, got = (load_file(str(root / final))
                     for root in (tmp_path / "reference", tmp_path / "interrupted"))
    assert set(got) == set(expected) and "ema.averaged.n_averaged" in got
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert torch.equal(vector(resumed.ema.module), vector(reference.ema.module))
    assert torch.equal(vector(resumed.model), vector(reference.model))


def test_training_state_loads_with_weights_only(tmp_path):
    trainer = tiny_trainer(tmp_path / "run", steps=2, checkpoint_every=1)
    trainer.run()
    state = load_training_state(tmp_path / "run" / "checkpoints" / "step-00000001")
    assert state["step"] == 1 and "optimizer" in state and "numpy" in state["rng"]


def test_evaluated_model_is_the_ema_once_updated_and_inference_loads_it(tmp_path):
    recipe = TinyRecipe(ema=ema_factory(decay=0.5, start_after=100, every=1))
    assert recipe.evaluated_model() is recipe.model  # before the first update
    recipe.ema = EMA(recipe.model.backbone, decay=0.5, start_after=1, every=1)
    trainer = tiny_trainer(tmp_path / "run", recipe, steps=3)
    trainer.run()
    evaluated = recipe.evaluated_model()
    assert evaluated.backbone is recipe.ema.module and evaluated.codec is recipe.model.codec
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000003"
    prefixes = json.loads((checkpoint / EVALUATED_FILE).read_text())["prefixes"]
    assert prefixes["backbone"] == "ema.averaged.module"
    fresh = tiny_model()
    load_model_weights(fresh, checkpoint)
    assert torch.equal(vector(fresh.backbone), vector(recipe.ema.module))
    assert not torch.equal(vector(fresh.backbone), vector(recipe.model.backbone))


def test_frozen_modules_never_reach_the_optimizer(tmp_path):
    recipe = TinyRecipe()
    recipe.teacher.requires_grad_(True)  # a careless edit must still not train the teacher
    recipe.encoder.requires_grad_(True)
    trainer = tiny_trainer(tmp_path / "run", recipe, steps=2)
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    frozen = list(recipe.teacher.parameters()) + list(recipe.encoder.parameters()) + \
        list(recipe.model.codec.parameters())
    assert frozen and not any(id(p) in in_optimizer for p in frozen)
    before = [p.detach().clone() for p in frozen]
    trainer.run()
    assert all(torch.equal(a, p) for a, p in zip(before, frozen))
    recipe.train()
    assert not recipe.teacher.training and not recipe.encoder.training
    assert recipe.model.backbone.training


def test_a_group_holding_a_frozen_parameter_is_refused(tmp_path):
    recipe = TinyRecipe()
    recipe.teacher.requires_grad_(True)
    recipe.parameter_groups = lambda: [ParameterGroup(
        "all", list(recipe.model.backbone.parameters()) + list(recipe.teacher.parameters()))]
    with pytest.raises(UserError, match="frozen module 'teacher'"):
        tiny_trainer(tmp_path / "run", recipe)


def test_parameter_groups_scale_the_learning_rate(tmp_path):
    recipe = TinyRecipe()
    unet = recipe.model.backbone.unet
    head = list(unet.conv_out.parameters())
    rest = [p for p in recipe.model.backbone.parameters() if all(p is not h for h in head)]
    recipe.parameter_groups = lambda: [ParameterGroup("unet", rest),
                                       ParameterGroup("conv_out", head, lr_scale=10.0)]
    gin.bind_parameter("adamw.learning_rate", 1e-3)
    gin.bind_parameter("warmup_exponential_decay.warmup_steps", 0)
    trainer = tiny_trainer(tmp_path / "run", recipe, steps=4)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-3, 1e-2])
    trainer.run()
    assert set(load_file(str(tmp_path / "run/checkpoints/step-00000004/model.safetensors"))) \
        == {f"model.backbone.{n}" for n, _ in recipe.model.backbone.named_parameters()}


def test_adam_with_a_cosine_schedule_is_chosen_in_gin(tmp_path):
    gin.parse_config("""
        Trainer.optimizer = @adam
        Trainer.lr_schedule = @warmup_cosine
        adam.learning_rate = 0.01
        warmup_cosine.warmup_steps = 2
    """)
    trainer = tiny_trainer(tmp_path / "run", steps=10)
    assert type(trainer.optimizer) is torch.optim.Adam
    rates = []
    for _ in range(10):
        rates.append(trainer.scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.scheduler.step()
    expected = [0.0, 0.005] + [0.01 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8))
                               for s in range(2, 10)]
    assert rates == pytest.approx(expected, abs=1e-12)


def test_constant_schedule_keeps_the_base_rate(tmp_path):
    gin.parse_config("Trainer.lr_schedule = @constant_lr\nadamw.learning_rate = 0.02")
    trainer = tiny_trainer(tmp_path / "run", steps=3)
    for _ in range(3):
        assert trainer.scheduler.get_last_lr()[0] == pytest.approx(0.02)
        trainer.optimizer.step()
        trainer.scheduler.step()


@pytest.mark.parametrize("pixel_losses", [False, True])
def test_gradient_checkpointing_covers_what_the_recipe_runs(tmp_path, pixel_losses):
    recipe = TinyRecipe(pixel_losses=pixel_losses)
    tiny_trainer(tmp_path / "run", recipe, gradient_checkpointing=True)
    assert recipe.model.backbone.unet.is_gradient_checkpointing
    assert recipe.model.codec.vae.is_gradient_checkpointing is pixel_losses


def test_checkpointed_decoder_gives_the_same_gradients():
    def gradients(checkpointing: bool) -> torch.Tensor:
        torch.manual_seed(0)
        recipe = TinyRecipe(pixel_losses=True)
        if checkpointing:
            recipe.enable_gradient_checkpointing()
        recipe.train()
        from train_helpers import Scenes
        from depthlab.data.batch import Batch, LabelledBatch
        items = [Scenes()[i] for i in range(2)]
        batch = Batch(LabelledBatch(*(torch.stack([i[k] for i in items])
                                      for k in ("rgb", "depth", "valid"))))
        recipe.losses(batch, torch.Generator()).total.backward()
        return torch.cat([p.grad.flatten() for p in recipe.model.backbone.parameters()
                          if p.grad is not None])

    torch.testing.assert_close(gradients(True), gradients(False), rtol=1e-5, atol=1e-7)


def test_reference_models_are_evaluated_through_the_predictor(tmp_path, monkeypatch):
    seen = []
    import depthlab.train.loop as loop

    def fake_evaluate(model, eval_sets, processing_res, device, progress):
        seen.append(model)
        return {}

    monkeypatch.setattr(loop, "evaluate_sets", fake_evaluate)
    recipe = TinyRecipe()
    tiny_trainer(tmp_path / "run", recipe, steps=1).run()
    assert seen[:2] == [recipe.model, recipe.teacher] and seen[2] is recipe.model


def test_sigusr1_finishes_the_step_saves_and_stops(tmp_path):
    import os
    import signal

    from depthlab.train.signals import Preempted

    recipe = TinyRecipe()
    original = recipe.losses

    def losses(batch, generator, with_panels=False):
        if not hasattr(recipe, "signalled"):
            recipe.signalled = True
            os.kill(os.getpid(), signal.SIGUSR1)  # arrives during the first step
        return original(batch, generator, with_panels)

    recipe.losses = losses
    trainer = tiny_trainer(tmp_path / "run", recipe, steps=5)
    previous = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted) as stopped:
        trainer.run()
    assert stopped.value.signal_name == "SIGUSR1" and stopped.value.step == 1
    assert (tmp_path / "run" / "checkpoints" / "step-00000001" / "model.safetensors").exists()
    assert signal.getsignal(signal.SIGUSR1) is previous  # the handler is restored
