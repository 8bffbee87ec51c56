"""A tiny recipe, data and trainer for the loop's tests (a uniquely named helper module)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from depthlab.data.batch import Batch
from depthlab.data.mixing import MixedBatches
from depthlab.losses.latent import latent_mse
from depthlab.models.backbone import small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.freezing import freeze
from depthlab.models.modes import DirectLatentMode
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.base import EMAFactory, Panel, Recipe, StepOutput
from depthlab.targets import TargetEncoder
from depthlab.teachers.base import Teacher
from depthlab.train.loop import Trainer

SIZE = 16


class ScaledTeacher(Teacher):
    """A teacher with a parameter (so freezing has something to protect)."""

    output_kind = OutputKind.DISPARITY

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.mean(1, keepdim=True) * self.scale + 0.1


def tiny_model(seed: int = 0) -> DepthModel:
    backbone = small_backbone(block_out_channels=(16, 32), attention_head_dim=4,
                              norm_num_groups=8, cross_attention_dim=8, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        codec = LatentCodec(small_vae(block_out_channels=(8, 16), norm_num_groups=8))
    return DepthModel(backbone, codec, DirectLatentMode())


class TinyRecipe(Recipe):
    """Latent MSE of d0 = UNet(x0, 0) against the GT depth latent, plus a frozen teacher and a
    frozen encoder that must never train."""

    def __init__(self, ema: EMAFactory | None = None, pixel_losses: bool = False):
        super().__init__()
        self.model = tiny_model()
        self.teacher = ScaledTeacher()
        self.encoder = freeze(nn.Linear(3, 3))
        self.target = TargetEncoder()
        self.uses_pixel_losses = pixel_losses
        self.use_ema(ema)

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        data = batch.labelled
        with torch.no_grad():
            x0 = self.model.encode_rgb(data.rgb)
            label = self.model.codec.encode_depth(self.target.from_depth(data.depth, data.valid))
        d0 = self.model.backbone(x0, 0.0)
        if self.uses_pixel_losses:
            loss = (self.model.codec.decode_depth(d0) - self.model.codec.decode_depth(label)) \
                .square().mean()
        else:
            loss = latent_mse(d0, label)
        panels = {"prediction": Panel(self.model.latent_to_unit(d0).detach(), OutputKind.DEPTH)} \
            if with_panels else {}
        return StepOutput(total=loss, terms={"mse": loss}, panels=panels)

    def reference_models(self):
        return {"teacher": self.teacher}


class Scenes(Dataset):
    """Random labelled 16x16 images, deterministic per index."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        depth = 1.0 + 4.0 * torch.rand(1, SIZE, SIZE, generator=generator)
        return {"rgb": torch.rand(3, SIZE, SIZE, generator=generator), "depth": depth,
                "valid": torch.ones(1, SIZE, SIZE, dtype=torch.bool), "name": f"scene{index}"}


def tiny_trainer(run_dir: Path, recipe: Recipe | None = None, steps: int = 6,
                 **kwargs) -> Trainer:
    """A trainer over `recipe` (a fresh `TinyRecipe` by default) with no evaluation sets."""
    run_dir.mkdir(parents=True, exist_ok=True)
    options = dict(data=MixedBatches(labelled=[Scenes()], batch_size=2), steps=steps,
                   device="cpu", eval_sets={}, progress=False, log_every=1, image_every=0,
                   checkpoint_every=1000)
    options.update(kwargs)
    return Trainer(run_dir=run_dir, recipe=recipe or TinyRecipe(), **options)


def vector(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])
