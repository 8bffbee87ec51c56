"""InitialiseFrom: loading a submodule from a run, a checkpoint or a safetensors file."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from depthlab.errors import UserError
from depthlab.models.weights import InitialiseFrom, checkpoint_dir
from depthlab.train.checkpoint import save_checkpoint


class Recipe(nn.Module):
    """A stand-in for a recipe: a two-layer `model` and an unrelated `other` module."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
        self.other = nn.Linear(2, 2)


def weights_of(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {f"{prefix}{n}": p.detach().clone() for n, p in module.named_parameters()}


def assert_loaded(module: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    actual = weights_of(module)
    assert set(actual) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


def assert_unchanged(module: nn.Module, before: dict[str, torch.Tensor]) -> None:
    assert_loaded(module, before)


@pytest.fixture
def source() -> Recipe:
    return Recipe(seed=1)


@pytest.fixture
def target() -> Recipe:
    return Recipe(seed=2)


def test_run_directory_uses_its_latest_checkpoint(tmp_path, source, target):
    run = tmp_path / "run"
    save_checkpoint(run, 5, weights_of(source), {})
    later = Recipe(seed=3)
    save_checkpoint(run, 20, weights_of(later), {})
    other_before = weights_of(target.other)
    file = InitialiseFrom(source=str(run), target="model").apply(target)
    assert file == checkpoint_dir(run, 20) / "model.safetensors"
    assert_loaded(target.model, weights_of(later.model))
    assert_unchanged(target.other, other_before)


def test_checkpoint_directory(tmp_path, source, target):
    run = tmp_path / "run"
    save_checkpoint(run, 5, weights_of(source), {})
    save_checkpoint(run, 20, weights_of(Recipe(seed=3)), {})
    InitialiseFrom(source=str(checkpoint_dir(run, 5)), target="model").apply(target)
    assert_loaded(target.model, weights_of(source.model))


def test_safetensors_file_with_an_empty_prefix(tmp_path, source, target):
    file = tmp_path / "module.safetensors"
    save_file(weights_of(source.model), str(file))
    used = InitialiseFrom(source=str(file), target="model", source_prefix="").apply(target)
    assert used == file
    assert_loaded(target.model, weights_of(source.model))


def test_file_argument_overrides_the_source(tmp_path, source, target):
    file = tmp_path / "module.safetensors"
    save_file(weights_of(source.model), str(file))
    missing = tmp_path / "nowhere"
    InitialiseFrom(source=str(missing), target="model", source_prefix="").apply(target, file=file)
    assert_loaded(target.model, weights_of(source.model))


def test_source_prefix_selects_where_the_weights_live(tmp_path, target):
    teacher, student = Recipe(seed=4), Recipe(seed=5)
    file = tmp_path / "both.safetensors"
    save_file({**weights_of(teacher.model, "teacher.net."),
               **weights_of(student.model, "student.net.")}, str(file))
    InitialiseFrom(source=str(file), target="model", source_prefix="student.net.").apply(target)
    assert_loaded(target.model, weights_of(student.model))
    InitialiseFrom(source=str(file), target="model", source_prefix="teacher.net.").apply(target)
    assert_loaded(target.model, weights_of(teacher.model))


def test_nested_target(tmp_path, source, target):
    run = tmp_path / "run"
    save_checkpoint(run, 1, weights_of(source), {})
    first_before = weights_of(target.model[0])
    InitialiseFrom(source=str(run), target="model.1").apply(target)
    assert_loaded(target.model[1], weights_of(source.model[1]))
    assert_unchanged(target.model[0], first_before)


def test_missing_parameter_is_refused(tmp_path, source, target):
    saved = weights_of(source.model)
    del saved["1.bias"]
    file = tmp_path / "partial.safetensors"
    save_file(saved, str(file))
    before = weights_of(target.model)
    with pytest.raises(UserError, match=r"1 parameters missing.*1\.bias"):
        InitialiseFrom(source=str(file), target="model", source_prefix="").apply(target)
    assert_unchanged(target.model, before)


def test_allow_missing_keeps_the_initial_value(tmp_path, source, target):
    saved = weights_of(source.model)
    del saved["1.bias"], saved["1.weight"]
    file = tmp_path / "partial.safetensors"
    save_file(saved, str(file))
    before = weights_of(target.model)
    InitialiseFrom(source=str(file), target="model", source_prefix="",
                   allow_missing=["1.*"]).apply(target)
    assert_loaded(target.model, {**saved, "1.weight": before["1.weight"],
                                 "1.bias": before["1.bias"]})
    assert not torch.equal(target.model[0].weight, before["0.weight"])


def test_allow_missing_is_a_pattern_not_a_prefix(tmp_path, source, target):
    saved = weights_of(source.model)
    del saved["1.bias"]
    file = tmp_path / "partial.safetensors"
    save_file(saved, str(file))
    with pytest.raises(UserError, match="missing"):
        InitialiseFrom(source=str(file), target="model", source_prefix="",
                       allow_missing=["1.weight", "bias"]).apply(target)


def test_unexpected_tensor_is_refused(tmp_path, source, target):
    file = tmp_path / "extra.safetensors"
    save_file({**weights_of(source.model), "2.weight": torch.zeros(2, 2)}, str(file))
    before = weights_of(target.model)
    with pytest.raises(UserError, match=r"1 unexpected.*2\.weight"):
        InitialiseFrom(source=str(file), target="model", source_prefix="").apply(target)
    assert_unchanged(target.model, before)


def test_shape_mismatch_is_refused(tmp_path, source, target):
    saved = weights_of(source.model)
    saved["1.weight"] = torch.zeros(2, 5)
    file = tmp_path / "wrong.safetensors"
    save_file(saved, str(file))
    before = weights_of(target.model)
    with pytest.raises(UserError, match=r"\(2, 5\).*\(2, 4\)"):
        InitialiseFrom(source=str(file), target="model", source_prefix="").apply(target)
    assert_unchanged(target.model, before)  # nothing is copied unless everything fits


def test_prefix_matching_nothing_is_refused(tmp_path, source, target):
    run = tmp_path / "run"
    save_checkpoint(run, 1, weights_of(source), {})
    with pytest.raises(UserError, match=r"student\.\*"):
        InitialiseFrom(source=str(run), target="model", source_prefix="student.").apply(target)


def test_unknown_target_is_refused(tmp_path, source, target):
    run = tmp_path / "run"
    save_checkpoint(run, 1, weights_of(source), {})
    with pytest.raises(UserError, match=r"'backbone'.*model, other"):
        InitialiseFrom(source=str(run), target="backbone").apply(target)


def test_source_without_weights_is_refused(tmp_path, target):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="No weights found"):
        InitialiseFrom(source=str(tmp_path / "empty"), target="model").apply(target)


def test_default_prefix_is_the_target(tmp_path, source, target):
    assert InitialiseFrom(source="x", target="model.1").source_prefix == "model.1."
    run = tmp_path / "run"
    save_checkpoint(run, 1, weights_of(source), {})
    InitialiseFrom(source=str(Path(run)), target="model.1").apply(target)
    assert_loaded(target.model[1], weights_of(source.model[1]))


def test_an_empty_target_is_the_whole_module_with_an_empty_prefix(tmp_path, source, target):
    block = InitialiseFrom(source=str(tmp_path / "whole.safetensors"), target="")
    assert block.source_prefix == ""
    save_file(weights_of(source), str(tmp_path / "whole.safetensors"))
    block.apply(target)
    assert_loaded(target, weights_of(source))


def test_buffers_present_in_the_file_are_loaded(tmp_path):
    saved, loaded = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    saved.running_mean.fill_(2.0)
    file = tmp_path / "norm.safetensors"
    save_file({k: v for k, v in saved.state_dict().items()}, str(file))
    InitialiseFrom(source=str(file), target="", source_prefix="").apply(loaded)
    assert torch.equal(loaded.running_mean, torch.full((3,), 2.0))
