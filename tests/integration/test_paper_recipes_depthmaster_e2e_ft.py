"""The paper-scale DepthMaster and E2E-FT files train a few steps on tiny models in the real
layouts (SD2 and Marigold in diffusers' layout, DINOv2 in transformers'), on Hypersim and Virtual
KITTI 2 in their real layouts; stage 2 starts from the stage 1 run by one binding."""
from __future__ import annotations

import json

import gin
import pytest

from depthlab.config import parse_config
from depthlab.teachers.base import clear_shared_instances
from depthlab.testing.tiny_encoders import save_dinov2_dir
from depthlab.testing.tiny_models import save_marigold_dir
from depthlab.train.loop import INITIALISED_FILE, build_trainer

from paper_layouts import labelled_paper_bindings

# One step on one Hypersim frame (480x640) keeps the suite short; tests/integration/
# test_paper_recipe.py covers both datasets' sizes through the same data blocks.
FEW_STEPS = ["TRAIN_STEPS = 1", "BATCH_SIZE = 1", "Trainer.accumulation_steps = 1",
             "batch_loader.num_workers = 0", "MixedBatches.labelled_weights = [1.0, 0.0]",
             "Trainer.progress = False", "Trainer.image_every = 1", "Trainer.log_every = 1"]


def train(gin_file: str, bindings: list[str], run_dir):
    try:
        parse_config([gin_file], bindings + FEW_STEPS)
        run_dir.mkdir(parents=True)
        trainer = build_trainer(run_dir)
        trainer.start_fresh()
        trainer.run()
        return trainer
    finally:
        gin.clear_config()
        clear_shared_instances()


@pytest.mark.slow
def test_depthmaster_stages_train_at_paper_layouts(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    data = labelled_paper_bindings(tmp_path)
    dinov2 = save_dinov2_dir(tmp_path / "dinov2")
    first = train("experiments/depthmaster_stage1.gin", data + [f"DINOV2_DIR = '{dinov2}'"],
                  tmp_path / "stage1")
    assert first.recipe.alignment is not None
    assert (tmp_path / "stage1" / "checkpoints" / "step-00000001" / "model.safetensors").exists()
    second = train("experiments/depthmaster_stage2.gin",
                   data + [f"STAGE1_RUN = '{tmp_path / 'stage1'}'"], tmp_path / "stage2")
    assert hasattr(second.recipe.model.backbone.unet.mid_block, "fourier")
    record = json.loads((tmp_path / "stage2" / INITIALISED_FILE).read_text())
    assert "stage1" in json.dumps(record)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["sd2", "marigold"])
def test_e2e_ft_trains_at_paper_layouts(start, tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    data = labelled_paper_bindings(tmp_path)
    if start == "sd2":
        trainer = train("experiments/e2e_ft.gin", data, tmp_path / "run")
    else:
        marigold = save_marigold_dir(tmp_path / "marigold")
        trainer = train("experiments/e2e_ft_from_marigold.gin",
                        data + [f"MARIGOLD_DIR = '{marigold}'"], tmp_path / "run")
    assert trainer.recipe.model.backbone.in_channels == 8
    assert (tmp_path / "run" / "checkpoints" / "step-00000001" / "model.safetensors").exists()
