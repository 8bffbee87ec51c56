"""experiments/fiffdepth.gin trains on tiny models with its three data sources at their real
sizes (Hypersim 480x640, Virtual KITTI 375x1242 cropped to 352x1216, photos cropped to 480x640)."""
from __future__ import annotations

import gin
import pytest

from depthlab.config import parse_config
from depthlab.train.loop import build_trainer

from paper_layouts import fiffdepth_paper_bindings


@pytest.mark.slow
def test_paper_recipe_trains_on_all_three_sources_at_real_sizes(tmp_path, repo_root,
                                                                monkeypatch):
    monkeypatch.chdir(repo_root)
    bindings = fiffdepth_paper_bindings(tmp_path) + [
        "TRAIN_STEPS = 2", "BATCH_SIZE = 2", "Trainer.accumulation_steps = 1",
        "batch_loader.num_workers = 0", "MixedBatches.labelled_weights = [0.5, 0.5]",
        "Trainer.progress = False", "Trainer.image_every = 1", "Trainer.log_every = 1"]
    try:
        parse_config(["experiments/fiffdepth.gin"], bindings)
        trainer = build_trainer(tmp_path / "run")
        sizes = {tuple(trainer.data[step].labelled.rgb.shape[-2:]) for step in range(2)}
        assert sizes == {(480, 640), (352, 1216)}  # both synthetic sets appear in the 2 steps
        assert trainer.data[0].unlabelled.rgb.shape[-2:] == (480, 640)
        trainer.start_fresh()
        trainer.run()
    finally:
        gin.clear_config()
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "model.safetensors").exists()
