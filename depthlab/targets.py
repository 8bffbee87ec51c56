"""Target spaces and Marigold's per-image normalisation of depth labels to [-1, 1].

A method predicts an affine-invariant map in one *target space*: depth, disparity (1/depth) or
sqrt-disparity. One binding (`target_space`) selects it for ground truth and teacher labels alike.
"""
from __future__ import annotations

import abc
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


def teacher_to_depth(unit: torch.Tensor, output_space: Space | str) -> torch.Tensor:
    """A positive map in a teacher's `output_space` (already shifted away from 0) -> depth."""
    output_space = Space(output_space)
    if output_space is Space.DEPTH:
        return unit
    if output_space is Space.DISPARITY:
        return 1.0 / unit
    if output_space is Space.SQRT_DISPARITY:
        return 1.0 / unit.square()
    raise ValueError(f"no conversion from the space {output_space!r}")


def shifted_labels(unit: torch.Tensor, shifts: torch.Tensor, output_space: Space,
                   target_space: Space, valid: torch.Tensor) -> torch.Tensor:
    """Labels in `target_space` for a teacher map `unit` [1, 1, H, W] in [0, 1] under each shift
    of `shifts` [K]: [K, 1, H, W], each normalised by its own 2/98 quantiles."""
    candidates = unit + shifts.view(-1, 1, 1, 1).to(unit)
    depth = teacher_to_depth(candidates, output_space)
    return quantile_normalise(depth_to_space(depth, target_space), valid.expand_as(depth))


class TeacherLabel(abc.ABC):
    """How a teacher's affine-invariant map in one space becomes a label in another.

    The teacher's map is known only up to scale and shift; once normalised to [0, 1] by its 2/98
    quantiles, the unknown left is the shift (where 0 disparity, infinitely far, lies). Each
    choice fixes that shift per image; the result is inverted and normalised in the target space.
    """

    needs_student = False

    @abc.abstractmethod
    def shifts(self, unit: torch.Tensor, output_space: Space, target_space: Space,
               valid: torch.Tensor, student: torch.Tensor | None) -> torch.Tensor:
        """The shift [B] for each image of `unit` [B, 1, H, W]."""

    def __call__(self, unit: torch.Tensor, output_space: Space, target_space: Space,
                 valid: torch.Tensor, student: torch.Tensor | None = None) -> torch.Tensor:
        shifts = self.shifts(unit, output_space, target_space, valid, student)
        return torch.cat([shifted_labels(u[None], s.view(1), output_space, target_space, v[None])
                          for u, s, v in zip(unit, shifts, valid)])


@gin.configurable
class FixedShift(TeacherLabel):
    """One shift for every image (0.05 limits a disparity label's depth range to a ratio of 21)."""

    def __init__(self, shift: float = 0.05):
        self.shift = float(shift)

    def shifts(self, unit, output_space, target_space, valid, student):
        return torch.full((len(unit),), self.shift, device=unit.device)


@gin.configurable
class StudentFittedShift(TeacherLabel):
    """Per image, the shift whose label best matches the student's own current prediction (its
    decoded normalised map in the target space, detached): the smallest mean absolute difference
    over `candidates` log-spaced shifts in [low, high], on a map pooled to at most `fit_size`."""

    needs_student = True

    def __init__(self, candidates: int = 64, low: float = 1e-3, high: float = 10.0,
                 fit_size: int = 64):
        self.grid = torch.logspace(float(torch.log10(torch.tensor(low))),
                                   float(torch.log10(torch.tensor(high))), candidates)
        self.fit_size = fit_size

    def shifts(self, unit, output_space, target_space, valid, student):
        if student is None:
            raise ValueError("StudentFittedShift needs the student's prediction")
        factor = max(1, -(-max(unit.shape[-2:]) // self.fit_size))
        unit, student = (F.avg_pool2d(x.float(), factor) for x in (unit, student.detach()))
        valid = F.max_pool2d((~valid).float(), factor) < 0.5
        chosen = []
        for u, s, v in zip(unit, student, valid):
            labels = shifted_labels(u[None], self.grid, output_space, target_space, v[None])
            errors = ((labels - s) * v).abs().sum(dim=(1, 2, 3)) / v.sum().clamp_min(1)
            chosen.append(self.grid[int(errors.argmin())])
        return torch.stack(chosen).to(unit.device)


@gin.configurable
class TargetEncoder:
    """Turns metric GT depth, or a teacher's affine-invariant output, into a [-1, 1] label in the
    recipe's target `space`.

    A teacher map already in `space` is normalised as it is; one in another space (Depth Anything
    V2's disparity for a depth-space recipe) goes through `teacher_label`, which fixes the unknown
    shift before inverting: `FixedShift` (one shift for all images) or `StudentFittedShift` (per
    image, fitted to the student's prediction). How FiffDepth did this is not public;
    docs/results/teacher_labels.md measures the choices.
    """

    def __init__(self, space: str = Space.DEPTH.value, teacher_label: TeacherLabel | None = None):
        self.space = Space(space)
        self.teacher_label = teacher_label or FixedShift()

    @property
    def needs_student(self) -> bool:
        """Whether a teacher label here depends on the student's prediction."""
        return self.teacher_label.needs_student

    def from_depth(self, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Metric GT depth [B, 1, H, W] -> normalised label in the target space."""
        return quantile_normalise(depth_to_space(depth, self.space), valid)

    def from_teacher(self, output: torch.Tensor, output_space: Space | str,
                     valid: torch.Tensor | None = None,
                     student: torch.Tensor | None = None) -> torch.Tensor:
        """A teacher's affine-invariant output (declared `output_space`) -> label in the target
        space; `student` is the student's normalised prediction [B, 1, H, W], for the choices
        that fit to it."""
        output_space = Space(output_space)
        valid = torch.ones_like(output, dtype=torch.bool) if valid is None else valid
        if output_space is self.space:
            return quantile_normalise(output, valid)
        unit = (quantile_normalise(output, valid) + 1.0) / 2.0
        return self.teacher_label(unit, output_space, self.space, valid, student)
