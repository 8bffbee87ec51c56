"""Python API for inference: `Predictor` wraps a `DepthModel` (or a teacher, or any
`DepthPredictorModule`), `load_predictor` builds one from gin files and weights.

    predictor = load_predictor(["experiments/fiffdepth.gin"], "runs/fiffdepth")
    maps = predictor.predict([Image.open("photo.jpg")])   # HxW float32 of predictor.output_kind

What `load_predictor` builds is the gin block `predictor_model`: a `DepthModel` unless an
experiment binds another predictor, e.g. a teacher (`predictor_model.model = %TEACHER`, as in
`experiments/depth_anything_v2.gin` and `experiments/mini/teacher.gin`).

Each image is resized to the processing resolution, padded to the model's input multiple,
predicted in batches of images of equal padded size, cropped and resized back to its own
resolution. Evaluation and training's validation use the same class.
"""
from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import gin
import numpy as np
import torch
from PIL import Image

from depthlab.errors import UserError
from depthlab.inference.images import to_rgb_array
from depthlab.inference.peak_normalised import PeakNormalised, needs_peak_normalising
from depthlab.inference.processing import (default_processing_res, pad_to_multiple,
                                           processing_size, resize)
from depthlab.models.depth_model import DepthModel
from depthlab.models.output_kind import DepthPredictorModule, OutputKind
from depthlab.models.weights import load_model_weights

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
RUN_CONFIG = "config.gin"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Prepared:
    """One image as the network sees it: `rgb` [1, 3, H', W'] padded, `size` the processing
    size before padding, `original` the input's (H, W)."""

    rgb: torch.Tensor
    size: tuple[int, int]
    original: tuple[int, int]

    def restore(self, output: torch.Tensor,
                value_range: tuple[float | None, float | None] | None) -> np.ndarray:
        """[1, C, H', W'] prediction -> HxW (HxWxC when C > 1) at the input's size: crop, resize
        back, clamp to `value_range` (resizing can overshoot a range by rounding)."""
        output = resize(output[..., :self.size[0], :self.size[1]], self.original)[0]
        if value_range is not None:
            output = output.clamp(*value_range)
        output = output[0] if output.shape[0] == 1 else output.permute(1, 2, 0)
        return output.cpu().numpy()


class Predictor:
    """Predictions for a list of images, each at its own resolution, of the model's output kind.

    `model`: a `DepthModel`, a teacher, or any `DepthPredictorModule`. `processing_res`: None = the
    recipe's default (`default_processing_res`), 0 = native, N = the longer side resized to N.
    `device` None keeps the model where it is. `dtype` 'bfloat16' or 'float16' runs under autocast
    (weights stay float32); `compile` compiles the model's UNet.
    """

    def __init__(self, model: DepthPredictorModule, processing_res: int | None = None,
                 batch_size: int = 1, device: str | None = None, dtype: str = "float32",
                 compile: bool = False):
        if dtype not in DTYPES:
            raise UserError(f"Unknown dtype '{dtype}': choose float32, bfloat16 or float16.")
        if batch_size < 1:
            raise UserError(f"The batch size must be at least 1; got {batch_size}.")
        self.model = model if device is None else model.to(device)
        self.device = torch.device(device) if device is not None else next(
            model.parameters(), torch.empty(0)).device
        self.processing_res = (default_processing_res() if processing_res is None
                               else int(processing_res))
        processing_size(1, 1, self.processing_res)  # validates the resolution
        self.batch_size = batch_size
        self.dtype = DTYPES[dtype]
        self.multiple = model.input_multiple
        if compile:
            if not isinstance(model, DepthModel):
                raise UserError("--compile applies to depthlab models (it compiles the UNet).")
            model.backbone.unet.compile()

    @property
    def output_kind(self) -> OutputKind:
        return self.model.output_kind

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, image: np.ndarray | Image.Image) -> Prepared:
        """Image -> padded network input, its unpadded processing size and its own size."""
        array = to_rgb_array(image)
        rgb = torch.from_numpy(array).permute(2, 0, 1)[None].to(self.device)
        size = processing_size(*array.shape[:2], self.processing_res)
        return Prepared(pad_to_multiple(resize(rgb, size), self.multiple), size, array.shape[:2])

    def predict(self, images: Sequence[np.ndarray | Image.Image]) -> list[np.ndarray]:
        """HxW float32 maps (HxWxC for multi-channel kinds) of `output_kind`, one per image at
        that image's resolution."""
        inputs = [self.prepare(image) for image in images]
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, prepared in enumerate(inputs):
            by_shape[tuple(prepared.rgb.shape)].append(index)
        outputs: list[np.ndarray] = [np.empty(0, np.float32)] * len(inputs)
        was_training = self.model.training
        if was_training:  # toggling walks every submodule: skip it when already in eval mode
            self.model.eval()
        try:
            for indices in by_shape.values():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start:start + self.batch_size]
                    with torch.inference_mode(), self.autocast():
                        output = self.model.predict(torch.cat([inputs[i].rgb for i in chunk]))
                    for row, index in enumerate(chunk):
                        outputs[index] = inputs[index].restore(output[row:row + 1].float(),
                                                               self.model.value_range)
        finally:
            if was_training:
                self.model.train()
        return outputs


def run_config_for(weights: str | Path) -> Path:
    """The `config.gin` of the run that `weights` (run dir, checkpoint dir or file) belongs to."""
    path = Path(weights).expanduser().resolve()
    for candidate in [path, *path.parents][:4]:
        if (candidate / RUN_CONFIG).is_file():
            return candidate / RUN_CONFIG
    raise UserError(f"No gin file was given and no {RUN_CONFIG} was found next to the weights "
                    f"'{weights}': pass the experiment with --gin.")


@gin.configurable
def predictor_model(model: DepthPredictorModule | None = None) -> DepthPredictorModule:
    """The predictor `load_predictor` builds: `model` when bound (a teacher, e.g.
    `predictor_model.model = @mini_teacher()`), otherwise the configured `DepthModel()`."""
    return DepthModel() if model is None else model


def load_predictor(gin_files: Sequence[str], weights: str | None, bindings: Sequence[str] = (),
                   processing_res: int | None = None, **kwargs) -> Predictor:
    """Parse the gin files, build `predictor_model()`, load `weights` and wrap it in a `Predictor`.

    `weights`: a run directory (its latest checkpoint), a checkpoint directory or a .safetensors
    file; None for a released checkpoint configured entirely in gin (e.g. Marigold, or a teacher).
    With no gin files, the run's own `config.gin` is used. A predictor that outputs maps at its own
    scale (a teacher) is divided by each image's maximum, so outputs lie in [0, 1]. `kwargs` go to
    `Predictor` (device defaults to CUDA when available).
    """
    from depthlab.config import build, parse_config  # local import: config imports every block

    gin_files = list(gin_files)
    if not gin_files:
        if weights is None:
            raise UserError("Give a gin file (--gin), weights from a run (--weights), or both.")
        gin_files = [str(run_config_for(weights))]
    parse_config(gin_files, bindings)
    model = build(predictor_model, "predictor")
    if not isinstance(model, DepthModel) and weights is not None:
        model = copy.deepcopy(model)  # teachers are shared per process: load into a copy
    model = model.eval()
    if weights is not None:
        load_model_weights(model, weights, require_all=not isinstance(model, DepthModel))
    if needs_peak_normalising(model):
        model = PeakNormalised(model).eval()
    kwargs["device"] = kwargs.get("device") or default_device()
    return Predictor(model, processing_res=processing_res, **kwargs)
