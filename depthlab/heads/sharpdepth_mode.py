"""SharpDepth's inference mode: two gated passes, then the metric scale from a metric teacher.

As in docs/methods.md (SharpDepth), everything runs at t = 999 on [RGB latent, x]:
  1. the first pass starts from noise (x = seeded Gaussian noise), as Lotus-G does;
  2. the metric teacher's depth, normalised per image to [-1, 1], is compared with the first
     pass; the noise-aware gating (`depthlab.heads.noise_aware_gating`) builds the second pass's
     input from noise where they disagree and from the metric map's latent where they agree;
  3. the second pass's clean latent is decoded to a normalised depth map, and a least-squares
     scale and shift to the metric teacher's depth over the pixels with error e < `fit_threshold`
     (0.5) turns it into metres.
The training recipe (`depthlab.recipes.sharpdepth`) calls the same `gate` and `clean`, with the
EMA student for the first pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import gin
import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from depthlab.errors import UserError
from depthlab.heads.noise_aware_gating import Gate, NoiseAwareGating, normalise_per_image
from depthlab.losses.affine_fit import least_squares_scale_shift
from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec
from depthlab.models.modes import LotusGMode, ModeInputs
from depthlab.models.output_kind import DepthPredictorModule, OutputKind

OUTPUT_KINDS = (OutputKind.METRIC_DEPTH, OutputKind.DEPTH)


def fit_to_metric(prediction: torch.Tensor, metric: torch.Tensor,
                  trusted: torch.Tensor) -> torch.Tensor:
    """`prediction` [B, 1, H, W] mapped to metres by the least-squares scale and shift to `metric`
    over the `trusted` pixels; an image whose trusted pixels cannot fix both (fewer than two
    distinct predicted values) is fitted over all its pixels instead. Clamped at 0."""
    scale, shift = least_squares_scale_shift(prediction, metric, trusted)
    failed = (scale == 0) & (shift == 0)
    if failed.any():
        all_scale, all_shift = least_squares_scale_shift(prediction, metric, None)
        scale = torch.where(failed, all_scale, scale)
        shift = torch.where(failed, all_shift, shift)
    view = (-1, 1, 1, 1)
    return (scale.view(view) * prediction.double() + shift.view(view)).clamp_min(0.0).to(
        prediction.dtype)


@dataclass
class SharpDepthPasses:
    """What inference computes for a batch: the metric teacher's depth, the gating, and the
    second pass's clean latent."""

    metric: torch.Tensor   # [B, 1, H, W] metres
    gate: Gate
    latent: torch.Tensor   # [B, C, h, w]


@gin.configurable
class SharpDepthMode(LotusGMode):
    """RGB -> metric depth (the default) or, with `output_kind = 'depth'`, the second pass's
    affine-invariant depth in [0, 1] without the metric fit.

    `metric_teacher`: any predictor of metric depth (a `Teacher` declaring 'metric_depth').
    `gating`: the `NoiseAwareGating` block. `scheduler` supplies abar and the prediction type
    (Lotus-G: 'sample'). `seed` seeds the first pass's noise per image (None: fresh noise).
    """

    def __init__(self, metric_teacher: DepthPredictorModule = gin.REQUIRED,
                 gating: NoiseAwareGating | None = None, timestep: int = 999,
                 scheduler: SchedulerMixin | None = None, fit_threshold: float = 0.5,
                 seed: int | None = 0, output_kind: str = OutputKind.METRIC_DEPTH.value):
        super().__init__(timestep, output_kind, scheduler, seed)
        if self.output_kind not in OUTPUT_KINDS:
            raise UserError(f"SharpDepthMode.output_kind must be 'metric_depth' or 'depth' (the "
                            f"affine-invariant map before the metric fit); got "
                            f"'{self.output_kind.value}'.")
        if metric_teacher.output_kind is not OutputKind.METRIC_DEPTH:
            raise UserError(f"SharpDepthMode.metric_teacher must predict metric depth, but "
                            f"{type(metric_teacher).__name__} declares "
                            f"'{metric_teacher.output_kind.value}'; bind METRIC_TEACHER to a "
                            f"metric model (gin/teachers/transformers_metric.gin, "
                            f"gin/teachers/mini_metric.gin).")
        self.metric_teacher = metric_teacher
        self.gating = gating or NoiseAwareGating()
        self.fit_threshold = float(fit_threshold)

    def normalised_metric(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(metric depth in metres, the same normalised per image to [-1, 1]) for RGB in [0, 1]."""
        with torch.no_grad():
            metric = self.metric_teacher.predict(rgb).float()
        return metric, normalise_per_image(metric)

    @torch.no_grad()
    def gate(self, backbone: UNetBackbone, codec: LatentCodec, rgb_latent: torch.Tensor,
             normalised_metric: torch.Tensor, noise: torch.Tensor,
             generator: torch.Generator | None = None) -> Gate:
        """The first pass of `backbone` from `noise`, decoded and clipped to [-1, 1], gated
        against the normalised metric depth (no gradients: the gating is an input)."""
        first = codec.decode_depth(self.clean(backbone, rgb_latent, noise)).float().clamp(-1, 1)
        metric_latent = codec.encode_depth(normalised_metric.to(rgb_latent.dtype)).float()
        return self.gating(first, normalised_metric, noise.float(), metric_latent, generator)

    def passes(self, inputs: ModeInputs) -> SharpDepthPasses:
        metric, normalised = self.normalised_metric(inputs.rgb)
        noise = self.start(inputs.rgb_latent)
        gate = self.gate(inputs.backbone, inputs.codec, inputs.rgb_latent, normalised, noise)
        latent = self.clean(inputs.backbone, inputs.rgb_latent, gate.latent)
        return SharpDepthPasses(metric, gate, latent)

    def latent(self, inputs: ModeInputs) -> torch.Tensor:
        return self.passes(inputs).latent

    def forward(self, inputs: ModeInputs) -> torch.Tensor:
        result = self.passes(inputs)
        if self.output_kind is OutputKind.DEPTH:
            return inputs.codec.decode_unit(result.latent)
        prediction = inputs.codec.decode_depth(result.latent).float().clamp(-1.0, 1.0)
        return fit_to_metric(prediction, result.metric, result.gate.error < self.fit_threshold)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fit_threshold={self.fit_threshold}"
