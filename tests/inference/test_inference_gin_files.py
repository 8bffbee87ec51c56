"""Each gin/inference/*.gin file selects its method's mode and predicts on a tiny checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from depthlab.inference.api import load_predictor
from depthlab.models.modes import DirectLatentMode, E2EFTMode, LotusDMode, MarigoldMode
from depthlab.models.output_kind import OutputKind as Space

from inference_helpers import MARIGOLD_GIN

CASES = {
    "fiffdepth": (dict(in_channels=4), DirectLatentMode, Space.DEPTH, 0.0),
    "depthmaster": (dict(in_channels=4), DirectLatentMode, Space.SQRT_DISPARITY, 1.0),
    "e2eft": (dict(in_channels=8), E2EFTMode, Space.DEPTH, 999),
    "lotus_d": (dict(in_channels=4, lotus=True), LotusDMode, Space.DISPARITY, 999.0),
    "marigold": (dict(in_channels=8), MarigoldMode, Space.DEPTH, None),
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_mode_file_builds_and_predicts(method, experiment_gin, checkpoint_dir):
    components, mode_class, space, timestep = CASES[method]
    macros = (f"MARIGOLD_DIR = '{checkpoint_dir(**components)}'\nDENOISING_STEPS = 2\n"
              f"ENSEMBLE_SIZE = 2\nNOISE = 'gaussian'")
    experiment = experiment_gin(method, macros, **components)
    predictor = load_predictor([str(experiment)], None, device="cpu")
    mode = predictor.model.mode
    assert type(mode) is mode_class and predictor.output_kind is space
    if timestep is not None:
        assert mode.timestep == timestep
    output = predictor.predict([np.zeros((24, 40, 3), np.uint8)])[0]
    assert output.shape == (24, 40) and np.isfinite(output).all()


def test_marigold_experiment_defaults(checkpoint_dir):
    root = checkpoint_dir()
    predictor = load_predictor([MARIGOLD_GIN], None, [f"MARIGOLD_DIR = '{root}'"],
                               device="cpu")
    mode = predictor.model.mode
    assert (mode.steps, mode.ensemble_size, mode.noise) == (4, 10, "gaussian")
    assert predictor.processing_res == 768
    assert predictor.model.backbone.prompt_embedding.shape[1] == 2  # unpadded empty prompt
