"""A tiny SharpDepth (student, frozen diffusion teacher, metric teacher) for its tests."""
from __future__ import annotations

import functools

import torch
from torch import nn

from depthlab.data.batch import Batch, UnlabelledBatch
from depthlab.heads.noise_aware_gating import NoiseAwareGating
from depthlab.heads.sharpdepth_mode import SharpDepthMode
from depthlab.models.backbone import UNetBackbone, small_backbone
from depthlab.models.codec import LatentCodec, small_vae
from depthlab.models.depth_model import DepthModel
from depthlab.models.ema import EMA
from depthlab.models.output_kind import OutputKind
from depthlab.recipes.sharpdepth import SharpDepth
from depthlab.teachers.base import Teacher


class BrightnessMetricTeacher(Teacher):
    """Metric depth 1 + 4 * brightness * scale, with a parameter that must never train."""

    output_kind = OutputKind.METRIC_DEPTH

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        return 1.0 + 4.0 * rgb.mean(1, keepdim=True) * self.scale


def tiny_backbone(seed: int = 0) -> UNetBackbone:
    """A UNet taking [RGB latent, depth latent] (2 x 4 channels), predicting v."""
    return small_backbone(in_channels=8, out_channels=4, block_out_channels=(16, 32),
                          cross_attention_dim=8, attention_head_dim=4, norm_num_groups=8,
                          seed=seed)


def tiny_codec() -> LatentCodec:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return LatentCodec(small_vae(block_out_channels=(8, 16), norm_num_groups=8))


def tiny_model(output_kind: str = "metric_depth", **gating) -> DepthModel:
    mode = SharpDepthMode(BrightnessMetricTeacher(), NoiseAwareGating(**gating),
                          output_kind=output_kind)
    return DepthModel(tiny_backbone(), tiny_codec(), mode)


def make_recipe(**kwargs) -> SharpDepth:
    torch.manual_seed(0)
    kwargs.setdefault("ema", functools.partial(EMA, decay=0.5, start_after=1, every=1))
    return SharpDepth(model=kwargs.pop("model", None) or tiny_model(),
                      diffusion_teacher=kwargs.pop("diffusion_teacher", None) or tiny_backbone(7),
                      **kwargs)


def image_batch(batch: int = 2, size: int = 16, seed: int = 3) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    return Batch(unlabelled=UnlabelledBatch(torch.rand(batch, 3, size, size,
                                                       generator=generator)))


class Photos(torch.utils.data.Dataset):
    """Random 16x16 images without labels, deterministic per index."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return {"rgb": torch.rand(3, 16, 16, generator=generator), "name": f"photo{index}"}


def vector(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])
