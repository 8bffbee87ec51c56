"""Metric depth teachers: RGB in, depth in metres out (SharpDepth's frozen metric teacher).

- `MetricDepthPredictor` / `MetricDepthTeacher`: a network of ImageNet-normalised pixels to metres
  behind Depth Anything's preprocessing (`depthlab.teachers.disparity_predictor`), declaring
  `OutputKind.METRIC_DEPTH`; the mini world's metric teacher is one
  (`depthlab.world.mini_metric_teacher`).
- `DepthAnythingMetricTeacher`: Depth Anything V2's metric variants (`depth_estimation_type =
  "metric"`: a sigmoid head times the config's `max_depth`, so `predicted_depth` is metres).
- `DepthProTeacher`: Apple's Depth Pro, with the preprocessing of its own image processor config
  (normalise, then resize to a fixed square) and the post-processing of its
  `post_process_depth_estimation`: the network predicts canonical inverse depth and a horizontal
  field of view; inverse depth in 1/m is canonical x 2 tan(fov / 2) (= width / focal length),
  resized back to the image, then inverted (clamped to [1e-4, 1e4] first).
- `transformers_metric_teacher(pretrained_dir, input_size)`: either of the two from a local
  transformers directory, built once per process; a relative Depth Anything V2 is refused.

UniDepth (the SharpDepth paper's teacher) has no transformers port. To plug it (or any metric
model) in, write a `Teacher` subclass with `output_kind = OutputKind.METRIC_DEPTH` whose
`predict(rgb)` returns [B, 1, H, W] metres at the input's size, expose a `@gin.configurable`
factory that builds it through `shared_instance`, and bind `METRIC_TEACHER = @that_factory()`.
"""
from __future__ import annotations

from pathlib import Path

import gin
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation,
                          DepthAnythingForDepthEstimation, DepthProForDepthEstimation)

from depthlab.errors import UserError
from depthlab.models.layout import require_layout
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import Teacher, shared_instance
from depthlab.teachers.depth_anything import depth_anything_map, patch_size
from depthlab.teachers.disparity_predictor import NetworkPredictor, frozen

# Depth Pro's post-processing clamps inverse depth to this range (1e-4 m to 1e4 m) before
# inverting it (DepthProImageProcessor.post_process_depth_estimation).
DEPTH_PRO_INVERSE_RANGE = (1e-4, 1e4)
PROCESSOR_FILE = "preprocessor_config.json"


class MetricDepthPredictor(NetworkPredictor):
    """A network of normalised pixels to depth in metres as a predictor (see
    `NetworkPredictor`): trainable, so a recipe can pretrain it and evaluate it as it runs."""

    output_kind = OutputKind.METRIC_DEPTH


class MetricDepthTeacher(MetricDepthPredictor, Teacher):
    """The metric predictor as a frozen teacher: no gradients, always in eval mode."""

    def __init__(self, model: nn.Module, input_size: int, multiple: int):
        super().__init__(frozen(model), input_size, multiple)

    forward = Teacher.forward


class DepthAnythingMetricPredictor(MetricDepthPredictor):
    """A metric `DepthAnythingForDepthEstimation` as a predictor (its head outputs metres)."""

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        super().__init__(model, input_size, patch_size(model))

    def network_map(self, pixels: torch.Tensor) -> torch.Tensor:
        return depth_anything_map(self.model, pixels)


class DepthAnythingMetricTeacher(DepthAnythingMetricPredictor, MetricDepthTeacher):
    """A metric Depth Anything V2 as a frozen teacher."""

    def __init__(self, model: DepthAnythingForDepthEstimation, input_size: int = 518):
        MetricDepthTeacher.__init__(self, model, input_size, patch_size(model))


class DepthProTeacher(MetricDepthTeacher):
    """Depth Pro as a frozen metric teacher.

    `size` (H, W), `mean` and `std` come from the model's image processor config: the image is
    normalised, then resized (bilinear, no antialiasing) to `size` whatever its aspect.
    `network_map` is inverse depth in 1/m, which `predict` resizes back and inverts.
    """

    def __init__(self, model: DepthProForDepthEstimation, size: tuple[int, int],
                 mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__(model, min(size), 1)
        self.size = (int(size[0]), int(size[1]))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def normalised_input(self, rgb: torch.Tensor) -> torch.Tensor:
        pixels = (rgb.float() - self.mean) / self.std
        return F.interpolate(pixels, size=self.size, mode="bilinear", align_corners=False,
                             antialias=False)

    def network_map(self, pixels: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixels)
        width_over_focal = 2.0 * torch.tan(torch.deg2rad(output.field_of_view) / 2.0)
        return output.predicted_depth[:, None] * width_over_focal.view(-1, 1, 1, 1)

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        inverse_depth = super().predict(rgb)  # resized back to the image, clamped at 0
        return 1.0 / inverse_depth.clamp(*DEPTH_PRO_INVERSE_RANGE)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _refuse(root: Path, problem: str, advice: str) -> UserError:
    return UserError(f"transformers_metric_teacher.pretrained_dir '{root}' holds {problem}, which "
                     f"does not predict depth in metres, so it cannot be the metric teacher. "
                     f"{advice}")


def _depth_pro_teacher(model: DepthProForDepthEstimation, root: Path) -> DepthProTeacher:
    """Depth Pro with the preprocessing its directory's image processor config describes."""
    processor = AutoImageProcessor.from_pretrained(str(root))
    size = (processor.size["height"], processor.size["width"])
    mean = tuple(processor.image_mean) if processor.do_normalize else (0.0, 0.0, 0.0)
    std = tuple(processor.image_std) if processor.do_normalize else (1.0, 1.0, 1.0)
    return DepthProTeacher(model, size, mean, std)


def metric_teacher(model: nn.Module, root: Path, input_size: int) -> Teacher:
    """The frozen metric teacher around a loaded transformers depth model from `root`."""
    if isinstance(model, DepthAnythingForDepthEstimation):
        return DepthAnythingMetricTeacher(model, input_size)
    if isinstance(model, DepthProForDepthEstimation):
        return _depth_pro_teacher(model, root)
    raise _refuse(root, f"a {type(model).__name__}", "Supported: Depth Anything V2's metric "
                                                     "variants and Depth Pro.")


def check_metric_config(root: Path) -> None:
    """Refuse a directory whose config is not a metric model depthlab supports (or a Depth Pro
    without its image processor config), before loading its weights."""
    try:
        config = AutoConfig.from_pretrained(str(root))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"transformers_metric_teacher.pretrained_dir '{root}': its config.json "
                        f"cannot be read as a transformers model config ({error}). Point it at "
                        f"a directory written by `save_pretrained`.") from None
    kind = getattr(config, "model_type", None)
    if kind == "depth_anything" and config.depth_estimation_type != "metric":
        raise _refuse(root, f"a {config.depth_estimation_type} Depth Anything V2 model "
                            f"(depth_estimation_type '{config.depth_estimation_type}': "
                            f"affine-invariant disparity)",
                      "Use one of its metric variants (e.g. Depth-Anything-V2-Metric-Hypersim-"
                      "Large-hf indoors, -VKITTI- outdoors), or use the relative model as the "
                      "disparity teacher (gin/teachers/depth_anything_v2.gin).")
    if kind not in ("depth_anything", "depth_pro"):
        raise _refuse(root, f"a '{kind}' model", "Supported: Depth Anything V2's metric "
                                                 "variants and Depth Pro.")
    if kind == "depth_pro":
        if not config.use_fov_model:
            raise _refuse(root, "a Depth Pro model without its field-of-view head "
                                "(use_fov_model false)",
                          "Without it the depth is known only up to the camera's focal length; "
                          "use the released checkpoint (use_fov_model true).")
        require_layout(root, [PROCESSOR_FILE], "Depth Pro (transformers layout)")


@gin.configurable
def transformers_metric_teacher(pretrained_dir: str = gin.REQUIRED,
                                input_size: int = 518) -> Teacher:
    """The process-wide metric teacher in `pretrained_dir` (transformers layout; built once):
    a metric Depth Anything V2 (its shorter side resized to `input_size`) or Depth Pro (the size
    in its image processor config; `input_size` unused)."""
    root = require_layout(pretrained_dir, ["config.json"], "metric depth model (transformers "
                                                           "layout)")

    def build() -> Teacher:
        check_metric_config(root)
        model = AutoModelForDepthEstimation.from_pretrained(str(root))
        return metric_teacher(model, root, input_size)

    return shared_instance(("transformers_metric_teacher", str(Path(root).resolve()), input_size),
                           build)
