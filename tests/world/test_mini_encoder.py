"""The mini world's DINOv2 stand-in: the mini teacher's own encoder, its tokens LayerNorm-
normalised, sharing the teacher's network and built once per process."""
from __future__ import annotations

from pathlib import Path

import gin
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from depthlab.config import build, parse_config
from depthlab.encoders import FeatureEncoder
from depthlab.models.freezing import frozen_parameter_owners, is_frozen
from depthlab.teachers.base import clear_shared_instances
from depthlab.world.mini_encoder import mini_teacher_encoder
from depthlab.world.mini_teacher import MiniTeacherNetwork, mini_teacher


@pytest.fixture(autouse=True)
def one_thread_fresh_cache():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    clear_shared_instances()
    yield
    clear_shared_instances()
    gin.clear_config()
    torch.set_num_threads(threads)


def test_tokens_are_the_teachers_features_layer_normalised_on_an_8_pixel_grid():
    encoder = mini_teacher_encoder()
    assert isinstance(encoder, FeatureEncoder)
    assert encoder.channels == 128 and encoder.patch_size == 8
    rgb = torch.rand(2, 3, 64, 64)
    tokens = encoder(rgb)
    assert tokens.shape == (2, 128, 8, 8)
    teacher = mini_teacher()
    with torch.no_grad():
        features = teacher.model.features(teacher.normalised_input(rgb))
    expected = F.layer_norm(features.permute(0, 2, 3, 1), (128,), eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(tokens, expected)
    torch.testing.assert_close(tokens.mean(1), torch.zeros(2, 8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens.var(1, unbiased=False), torch.ones(2, 8, 8),
                               atol=1e-3, rtol=0)


def test_other_sizes_round_to_the_grid():
    assert mini_teacher_encoder()(torch.rand(1, 3, 61, 75)).shape == (1, 128, 8, 9)


def test_shares_the_teachers_network_and_is_built_once():
    encoder = mini_teacher_encoder()
    assert encoder is mini_teacher_encoder(None)
    assert encoder.network is mini_teacher().model


def test_frozen_and_passes_no_gradient():
    encoder = mini_teacher_encoder()
    encoder.train()
    assert is_frozen(encoder) and not any(m.training for m in encoder.modules())
    parameters = list(encoder.parameters())
    assert not any(p.requires_grad for p in parameters)
    assert set(frozen_parameter_owners(encoder)) == {id(p) for p in parameters}
    projector = torch.nn.Conv2d(128, 128, 1)
    loss = (projector(torch.randn(1, 128, 8, 8)) - encoder(torch.rand(1, 3, 64, 64))).square()
    loss.mean().backward()
    assert projector.weight.grad is not None and all(p.grad is None for p in parameters)


def test_weights_of_a_file_give_that_teachers_encoder(tmp_path: Path):
    torch.manual_seed(1)
    file = tmp_path / "teacher.safetensors"
    save_file(MiniTeacherNetwork().state_dict(), str(file))
    encoder = mini_teacher_encoder(str(file))
    assert encoder is not mini_teacher_encoder()
    assert encoder.network is mini_teacher(str(file)).model
    rgb = torch.rand(1, 3, 64, 64)
    assert not torch.allclose(encoder(rgb), mini_teacher_encoder()(rgb))


def test_gin_builds_it_after_the_blocks_are_imported():
    parse_config([], ["mini_teacher_encoder.weights = None"])
    assert build(mini_teacher_encoder, "encoder") is mini_teacher_encoder()
