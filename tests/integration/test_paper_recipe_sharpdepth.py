"""The paper-scale SharpDepth file trains a few steps on tiny models in the real layouts: Lotus-G
in diffusers' layout (8 input channels), a metric Depth Anything V2 in transformers' layout, and a
folder of photos; the trained model predicts metres."""
from __future__ import annotations

import gin
import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.config import parse_config
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import clear_shared_instances
from depthlab.testing.tiny_models import save_metric_depth_anything_dir, save_sd2_dir
from depthlab.train.loop import build_trainer

FEW_STEPS = ["TRAIN_STEPS = 2", "Trainer.accumulation_steps = 1", "RESOLUTION = (64, 96)",
             "batch_loader.num_workers = 0", "Trainer.progress = False",
             "Trainer.image_every = 1", "Trainer.log_every = 1", "Trainer.checkpoint_every = 2",
             "EMA.start_after = 1", "EMA.every = 1"]


@pytest.mark.slow
def test_sharpdepth_trains_at_paper_layouts(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), np.uint8)).save(photos / name)
    lotus = save_sd2_dir(tmp_path / "lotus_g", in_channels=8)
    metric = save_metric_depth_anything_dir(tmp_path / "metric")
    bindings = [f"LOTUS_G_DIR = '{lotus}'", f"METRIC_DIR = '{metric}'",
                f"REAL_IMAGES_DIR = '{photos}'"]
    try:
        parse_config(["experiments/sharpdepth.gin"], bindings + FEW_STEPS)
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        trainer = build_trainer(run_dir)
        teacher_before = [p.clone() for p in trainer.recipe.diffusion_teacher.parameters()]
        trainer.start_fresh()
        trainer.run()
        recipe = trainer.recipe
        assert recipe.mode.prediction_type == "sample"  # Lotus-G predicts x0
        assert recipe.ema.updates == 2
        assert all(torch.equal(a, b) for a, b in
                   zip(teacher_before, recipe.diffusion_teacher.parameters()))
        assert (run_dir / "checkpoints" / "step-00000002" / "extra.safetensors").exists()
        model = recipe.evaluated_model().eval()
        assert model.output_kind is OutputKind.METRIC_DEPTH
        with torch.no_grad():
            depth = model.predict(torch.rand(1, 3, 64, 96))
        assert depth.shape == (1, 1, 64, 96) and torch.all(depth >= 0)
    finally:
        gin.clear_config()
        clear_shared_instances()
