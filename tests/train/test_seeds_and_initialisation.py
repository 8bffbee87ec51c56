"""Seeds apply before anything is built, and `Trainer.initialise` starts a submodule from a run."""
from __future__ import annotations

import json

import pytest
import torch

from depthlab.config import parse_config
from depthlab.errors import UserError
from depthlab.models.freezing import freeze
from depthlab.models.weights import InitialiseFrom
from depthlab.train.loop import INITIALISED_FILE, build_trainer

from train_helpers import TinyRecipe, tiny_trainer, vector

ADAPTER = ["mini_prior.pretrained = False", "small_backbone.block_out_channels = (16, 32)",
           "small_backbone.attention_levels = None",
           "small_backbone.attention_head_dim = 4", "small_backbone.norm_num_groups = 8",
           "mini_prior.patches = [@InsertAfter()]", "InsertAfter.at = 'mid_block'",
           "InsertAfter.module = @ResidualAdapter", "InsertAfter.name = 'adapter'",
           "EVAL_SETS = {}"]


def adapter_weights(tmp_path, seed: int, global_seed: int) -> torch.Tensor:
    parse_config(["experiments/mini/fiffdepth.gin"], ADAPTER + [f"Trainer.seed = {seed}"])
    torch.manual_seed(global_seed)  # whatever ran before must not matter
    trainer = build_trainer(tmp_path / f"run-{seed}-{global_seed}")
    return vector(trainer.recipe.model.backbone.unet.mid_block.adapter)


def test_the_run_seed_fixes_the_initialisation_of_new_modules(tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(repo_root)
    first = adapter_weights(tmp_path, seed=0, global_seed=123)
    again = adapter_weights(tmp_path, seed=0, global_seed=999)
    other = adapter_weights(tmp_path, seed=1, global_seed=123)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_a_submodule_starts_from_a_run_with_a_new_parameter_allowed_missing(tmp_path):
    source = tiny_trainer(tmp_path / "stage1", steps=2)
    source.run()
    trained = vector(source.recipe.model.backbone)

    recipe = TinyRecipe()
    recipe.model.backbone.unet.mid_block.add_module("extra", torch.nn.Linear(2, 2))
    block = InitialiseFrom(source=str(tmp_path / "stage1"), target="model.backbone",
                           allow_missing=["unet.mid_block.extra.*"])
    trainer = tiny_trainer(tmp_path / "stage2", recipe, steps=2, initialise=[block])
    extra_before = vector(recipe.model.backbone.unet.mid_block.extra)
    trainer.start_fresh()
    unet_only = [p for n, p in recipe.model.backbone.named_parameters() if ".extra." not in n]
    assert torch.equal(torch.cat([p.detach().flatten() for p in unet_only]), trained)
    assert torch.equal(vector(recipe.model.backbone.unet.mid_block.extra), extra_before)
    record = json.loads((tmp_path / "stage2" / INITIALISED_FILE).read_text())
    assert record == [{"target": "model.backbone", "source_prefix": "model.backbone.",
                       "source": str(tmp_path / "stage1/checkpoints/step-00000002/"
                                     "model.safetensors")}]

    strict = InitialiseFrom(source=str(tmp_path / "stage1"), target="model.backbone")
    with pytest.raises(UserError, match="allow_missing"):
        strict.apply(recipe)


def test_initialisation_is_not_repeated_on_resume(tmp_path):
    tiny_trainer(tmp_path / "source", steps=1).run()
    block = InitialiseFrom(source=str(tmp_path / "source"), target="model.backbone")
    first = tiny_trainer(tmp_path / "run", steps=4, checkpoint_every=2, initialise=[block])
    first.start_fresh()
    first.steps = 2
    first.run()
    at_two = vector(first.recipe.model.backbone)
    resumed = tiny_trainer(tmp_path / "run", steps=4, initialise=[block])
    resumed.resume_from(tmp_path / "run" / "checkpoints" / "step-00000002")
    assert torch.equal(vector(resumed.recipe.model.backbone), at_two)


def test_a_frozen_initialised_copy_is_reloaded_from_the_recorded_file_on_resume(tmp_path):
    tiny_trainer(tmp_path / "source", steps=1).run()
    block = InitialiseFrom(source=str(tmp_path / "source"), target="encoder",
                           source_prefix="model.backbone.unet.conv_out.")
    recipe = TinyRecipe()
    recipe.encoder = freeze(torch.nn.Conv2d(16, 4, 3, padding=1))  # shaped like conv_out
    first = tiny_trainer(tmp_path / "run", recipe, steps=2, checkpoint_every=1,
                         initialise=[block])
    first.start_fresh()
    first.run()
    expected = vector(recipe.encoder)

    again = TinyRecipe()
    again.encoder = freeze(torch.nn.Conv2d(16, 4, 3, padding=1))
    resumed = tiny_trainer(tmp_path / "run", again, steps=2, initialise=[block])
    resumed.resume_from(tmp_path / "run" / "checkpoints" / "step-00000001")
    assert torch.equal(vector(again.encoder), expected)
