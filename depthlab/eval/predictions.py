"""Prediction maps: where a method's `.npy` files live, and checking and resizing them to GT."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from depthlab.eval.datasets.registry import SampleError

ASPECT_TOLERANCE = 0.02  # relative; catches a missing crop or a transposed map, not rounding


def prediction_candidates(sample_id: str) -> list[str]:
    """Relative `.npy` paths tried for a sample: its RGB path with the extension replaced, then
    the names Marigold's `infer.py` writes (`pred_<name>`, and `pred_<id>` for NYU's `rgb_<id>`)."""
    path = PurePosixPath(sample_id)
    names = [path.with_suffix(".npy"), path.with_name(f"pred_{path.stem}.npy")]
    if path.stem.startswith("rgb_"):
        names.append(path.with_name(f"pred_{path.stem[4:]}.npy"))
    return [str(n) for n in names]


def load_prediction(predictions_dir: str | Path, sample_id: str) -> np.ndarray:
    """Load the sample's prediction from `predictions_dir`; a missing or unreadable file is a
    `SampleError` naming the expected path."""
    root = Path(predictions_dir)
    candidates = prediction_candidates(sample_id)
    path = next((root / c for c in candidates if (root / c).is_file()), None)
    if path is None:
        raise SampleError(sample_id, f"missing prediction {root / candidates[0]}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise SampleError(sample_id, f"cannot read prediction {path}: {error}") from None


def prepare_prediction(pred: np.ndarray, sample_id: str, shape: tuple[int, int]) -> np.ndarray:
    """Check a raw prediction (2-D, real, finite, GT's aspect ratio) and resize it to `shape`
    (bilinear with antialiasing, as Marigold resizes back to the input size)."""
    pred = np.asarray(pred)
    if pred.ndim > 2:
        pred = pred.squeeze()
    if pred.ndim != 2:
        raise SampleError(sample_id, f"prediction has shape {pred.shape}; expected one HxW map")
    if not (np.issubdtype(pred.dtype, np.floating) or np.issubdtype(pred.dtype, np.integer)):
        raise SampleError(sample_id, f"prediction has dtype {pred.dtype}; expected floats")
    pred = pred.astype(np.float32, copy=False)
    bad = np.count_nonzero(~np.isfinite(pred))
    if bad:
        raise SampleError(sample_id, f"prediction has {bad} NaN or infinite values")
    if pred.shape == tuple(shape):
        return pred
    height, width = shape
    aspect, expected = pred.shape[0] / pred.shape[1], height / width
    if abs(aspect / expected - 1.0) > ASPECT_TOLERANCE:
        raise SampleError(sample_id, f"prediction is {pred.shape[1]}x{pred.shape[0]} but the GT "
                                     f"(after the protocol's crop) is {width}x{height}: the aspect "
                                     "ratios differ (wrong crop or transposed?)")
    return resize_bilinear(pred, shape)


def resize_bilinear(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with antialiasing (torch's, which follows PIL)."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized[0, 0].numpy()
