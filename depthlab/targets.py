"""Target spaces and Marigold's per-image normalisation of depth labels to [-1, 1].

A method predicts an affine-invariant map in one *target space*: depth, disparity (1/depth) or
sqrt-disparity. One binding (`target_space`) selects it for ground truth and teacher labels alike.
"""
from __future__ import annotations

import enum

import gin
import torch
import torch.nn.functional as F


class Space(str, enum.Enum):
    DEPTH = "depth"
    DISPARITY = "disparity"
    SQRT_DISPARITY = "sqrt_disparity"


gin.constant("depthlab.DEPTH", Space.DEPTH.value)
gin.constant("depthlab.DISPARITY", Space.DISPARITY.value)
gin.constant("depthlab.SQRT_DISPARITY", Space.SQRT_DISPARITY.value)


def depth_to_space(depth: torch.Tensor, space: Space | str) -> torch.Tensor:
    """Metric depth (0 = invalid) -> values in `space`; invalid pixels stay 0."""
    space = Space(space)
    if space is Space.DEPTH:
        return depth
    disparity = torch.where(depth > 0, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
    if space is Space.DISPARITY:
        return disparity
    if space is Space.SQRT_DISPARITY:
        return disparity.sqrt()
    raise ValueError(f"no conversion from depth to the space {space!r}")


def masked_quantiles(values: torch.Tensor, valid: torch.Tensor, low: float,
                     high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image `low` and `high` quantiles over valid pixels; returns two [B] tensors."""
    lows, highs = [], []
    for image, mask in zip(values, valid):
        selected = image[mask]
        if selected.numel() == 0:
            selected = torch.zeros(1, dtype=image.dtype, device=image.device)
        q = torch.quantile(selected.float(), torch.tensor([low, high], device=image.device))
        lows.append(q[0])
        highs.append(q[1])
    return torch.stack(lows), torch.stack(highs)


@gin.configurable
def quantile_normalise(values: torch.Tensor, valid: torch.Tensor, low: float = 0.02,
                       high: float = 0.98) -> torch.Tensor:
    """Marigold's normalisation: x' = 2 (x - q_low) / (q_high - q_low) - 1, clipped to [-1, 1].

    `values` and `valid` are [B, 1, H, W]; quantiles are taken per image over valid pixels.
    """
    q_low, q_high = masked_quantiles(values, valid, low, high)
    q_low, q_high = q_low.view(-1, 1, 1, 1), q_high.view(-1, 1, 1, 1)
    scaled = 2.0 * (values - q_low) / (q_high - q_low).clamp_min(1e-8) - 1.0
    return scaled.clamp(-1.0, 1.0)


def latent_valid_mask(valid: torch.Tensor, factor: int) -> torch.Tensor:
    """Valid mask at latent resolution: a max-pool of the *invalid* mask voids a whole cell."""
    invalid = (~valid).float()
    return F.max_pool2d(invalid, kernel_size=factor, stride=factor) < 0.5


@gin.configurable
class TargetEncoder:
    """Turns metric GT depth, or a teacher's affine-invariant output, into a [-1, 1] label.

    `inversion_offset` is FiffDepth's unpublished choice of how an affine-invariant disparity
    (Depth Anything V2's output) becomes a depth label: the teacher map is first normalised to
    [0, 1] by its 2/98 quantiles, offset by this value (the unknown shift), then inverted. A larger
    offset compresses the far range; 0.05 limits the label's depth range to a ratio of 21.
    """

    def __init__(self, space: str = Space.DEPTH.value, inversion_offset: float = 0.05):
        self.space = Space(space)
        self.inversion_offset = inversion_offset

    def from_depth(self, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Metric GT depth [B, 1, H, W] -> normalised label in the target space."""
        return quantile_normalise(depth_to_space(depth, self.space), valid)

    def from_teacher(self, output: torch.Tensor, output_space: Space | str,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
        """A teacher's affine-invariant output (declared `output_space`) -> label in target space."""
        output_space = Space(output_space)
        valid = torch.ones_like(output, dtype=torch.bool) if valid is None else valid
        if output_space is self.space:
            return quantile_normalise(output, valid)
        unit = (quantile_normalise(output, valid) + 1.0) / 2.0 + self.inversion_offset
        if output_space is Space.DEPTH:
            as_depth = unit
        elif output_space is Space.DISPARITY:
            as_depth = 1.0 / unit
        elif output_space is Space.SQRT_DISPARITY:
            as_depth = 1.0 / unit.square()
        else:
            raise ValueError(f"no conversion from the space {output_space!r}")
        return quantile_normalise(depth_to_space(as_depth, self.space), valid)
