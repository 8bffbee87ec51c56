"""Every shipped gin file parses and builds, and every block file is used by some experiment."""
from __future__ import annotations

import re
from pathlib import Path

import gin
import pytest
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from depthlab.config import REPO_ROOT, build, parse_config
from depthlab.inference.api import predictor_model
from depthlab.testing.tiny_encoders import save_dinov2_dir
from depthlab.testing.tiny_models import (save_marigold_dir, save_metric_depth_anything_dir,
                                          save_sd2_dir)
from depthlab.train.loop import build_trainer
from depthlab.world.mini_prior import mini_prior
from depthlab.world.shipped import load_shipped

from paper_layouts import fiffdepth_paper_bindings

EXPERIMENTS = sorted(str(p.relative_to(REPO_ROOT))
                     for p in (REPO_ROOT / "experiments").rglob("*.gin"))
BLOCK_FILES = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "gin").rglob("*.gin"))
INCLUDE = re.compile(r"^\s*include\s+['\"](.+?)['\"]", re.MULTILINE)
# Released-checkpoint macros and the tiny checkpoint each needs.
CHECKPOINTS = {"MARIGOLD_DIR": dict(in_channels=8), "E2EFT_DIR": dict(in_channels=8),
               "LOTUS_DIR": dict(in_channels=4, lotus=True), "DEPTHMASTER_DIR": dict(in_channels=4)}


def included(file: str, seen: set[str] | None = None) -> set[str]:
    """`file` and everything it includes, transitively."""
    seen = set() if seen is None else seen
    if file not in seen:
        seen.add(file)
        for child in INCLUDE.findall((REPO_ROOT / file).read_text()):
            included(child, seen)
    return seen


def test_every_block_file_is_included_by_an_experiment():
    used = set().union(*(included(e) for e in EXPERIMENTS))
    orphans = [f for f in BLOCK_FILES if f not in used]
    assert not orphans, f"gin files no experiment includes: {orphans}"


def test_every_include_exists():
    for file in EXPERIMENTS + BLOCK_FILES:
        for child in INCLUDE.findall((REPO_ROOT / file).read_text()):
            assert (REPO_ROOT / child).is_file(), f"{file} includes missing {child}"


@pytest.fixture(scope="module")
def local_dirs(tmp_path_factory) -> dict[str, list[str]]:
    """Bindings for each REQUIRED macro family, pointing at tiny directories."""
    root = tmp_path_factory.mktemp("gin_dirs")
    bindings = {"SD2_DIR": fiffdepth_paper_bindings(root)}
    for macro, components in CHECKPOINTS.items():
        bindings[macro] = [f"{macro} = '{save_marigold_dir(root / macro, **components)}'"]
    bindings["DINOV2_DIR"] = [f"DINOV2_DIR = '{save_dinov2_dir(root / 'dinov2')}'"]
    # Stand-ins for a DepthMaster stage 1 run: its UNet where a run keeps it.
    paper_unet = UNet2DConditionModel.from_pretrained(root / "sd2", subfolder="unet").state_dict()
    for family, unet in (("STAGE1_RUN", paper_unet), ("STAGE1_RUN mini", load_shipped("prior"))):
        file = root / family.replace(" ", "_") / "model.safetensors"
        file.parent.mkdir()
        save_file({f"model.backbone.unet.{k}": v.contiguous() for k, v in unet.items()},
                  str(file))
        bindings[family] = [f"STAGE1_RUN = '{file}'"]
    bindings["METRIC_DIR"] = [f"METRIC_DIR = '{save_metric_depth_anything_dir(root / 'metric')}'"]
    lotus_g = save_sd2_dir(root / "lotus_g", in_channels=8)
    bindings["LOTUS_G_DIR"] = [f"LOTUS_G_DIR = '{lotus_g}'", f"METRIC_DIR = '{root / 'metric'}'"]
    bindings["DIFFUSION_RUN"] = [f"DIFFUSION_RUN = '{mini_diffusion_run(root)}'"]
    return bindings


def mini_diffusion_run(root: Path) -> Path:
    """A stand-in for a mini diffusion-depth run: the mini prior with E2E-FT's 32-channel conv_in,
    where a run keeps its UNet."""
    parse_config(["gin/backbones/mini.gin"], ["mini_prior.conv_in_channels = 32"])
    try:
        unet = build(mini_prior, "mini prior").unet.state_dict()
    finally:
        gin.clear_config()
    file = root / "diffusion_run" / "model.safetensors"
    file.parent.mkdir()
    save_file({f"model.backbone.unet.{k}": v.contiguous() for k, v in unet.items()}, str(file))
    return file


def assigned_macros(experiment: str) -> set[str]:
    """Macros the experiment's own file assigns a value other than %gin.REQUIRED."""
    text = (REPO_ROOT / experiment).read_text()
    return set(re.findall(r"^\s*([A-Z0-9_]+)\s*=\s*(?!%gin\.REQUIRED)\S", text, re.MULTILINE))


def required_macros(experiment: str) -> set[str]:
    text = "\n".join((REPO_ROOT / f).read_text() for f in included(experiment))
    return set(re.findall(r"^\s*(\w+)\s*=\s*%gin\.REQUIRED", text, re.MULTILINE))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_parses_and_builds(experiment, local_dirs, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    bindings = []
    for macro in sorted(required_macros(experiment)):
        family = "SD2_DIR" if macro in ("SD2_DIR", "DA2_DIR", "HYPERSIM_DIR", "VKITTI_DIR",
                                        "REAL_IMAGES_DIR") else macro
        if macro == "STAGE1_RUN" and experiment.startswith("experiments/mini/"):
            family = "STAGE1_RUN mini"
        assert family in local_dirs, f"{experiment}: no tiny stand-in for {macro}"
        bindings += [b for b in local_dirs[family] if b not in bindings]
    # A macro the experiment sets itself (SD2_DIR = %LOTUS_G_DIR) keeps the experiment's value.
    bindings = [b for b in bindings if b.split(" = ")[0] not in assigned_macros(experiment)]
    try:
        parse_config([experiment], bindings)
        if "Trainer.recipe" in gin.config_str():
            trainer = build_trainer(Path(tmp_path) / "run")
            assert trainer.recipe.parameter_groups()[0].parameters
            if required_macros(experiment) & {"STAGE1_RUN", "DIFFUSION_RUN"}:
                (Path(tmp_path) / "run").mkdir()
                trainer.start_fresh()  # the stage 1 weights fit where the recipe expects them
        else:
            model = build(predictor_model, "predictor")  # a DepthModel unless bound otherwise
            assert model.output_kind is not None
    finally:
        gin.clear_config()
