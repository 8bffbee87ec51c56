"""Decoders for the file formats of the evaluation sets, and the one place that turns a missing
or corrupt file into a `SampleError` naming the sample and the file."""
from __future__ import annotations

import io
from typing import Callable, TypeVar

import numpy as np
from PIL import Image

from depthlab.eval.datasets.registry import SampleError
from depthlab.eval.datasets.source import DataSource

T = TypeVar("T")

SINTEL_DPT_TAG = 202021.25


def read_file(source: DataSource, sample_id: str, rel_path: str,
              decoder: Callable[..., T], *args) -> T:
    """Read `rel_path` from `source` and decode it; failures name the sample and the file."""
    where = source.describe(rel_path)
    try:
        data = source.read_bytes(rel_path)
    except FileNotFoundError:
        raise SampleError(sample_id, f"missing file {where}") from None
    except OSError as error:
        raise SampleError(sample_id, f"cannot read {where}: {error}") from None
    try:
        return decoder(data, *args)
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise SampleError(sample_id, f"corrupt or unreadable file {where}: {error}") from None


def decode_image(data: bytes) -> np.ndarray:
    """Any image PIL reads, as an array in its stored mode (16-bit PNG stays 16-bit)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


def decode_rgb(data: bytes) -> np.ndarray:
    """An RGB image as HxWx3 uint8 (grey or RGBA files are converted)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)


def decode_png_depth(data: bytes, scale: float) -> np.ndarray:
    """Integer depth PNG / `scale` -> float32 metres (divided in float64, as the reference)."""
    raw = decode_image(data)
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"expected a single-channel integer depth image, got shape {raw.shape} "
                         f"and dtype {raw.dtype}")
    return (raw / scale).astype(np.float32)


def decode_grey(data: bytes) -> np.ndarray:
    """A single-channel image (mask, alpha, edges) as float32 in [0, 1]."""
    raw = decode_image(data)
    if raw.ndim == 3:  # grey+alpha or RGBA: the alpha; RGB: the first channel
        raw = raw[..., -1] if raw.shape[-1] in (2, 4) else raw[..., 0]
    if raw.dtype == bool:
        return raw.astype(np.float32)
    peak = 65535.0 if raw.dtype == np.uint16 else 255.0 if raw.dtype == np.uint8 else 1.0
    return (raw / peak).astype(np.float32)


def decode_npy(data: bytes) -> np.ndarray:
    """A `.npy` array, squeezed (DIODE stores HxWx1)."""
    return np.load(io.BytesIO(data), allow_pickle=False).squeeze()


def decode_raw_float32(data: bytes, shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Headerless float32 depth (ETH3D); the first of `shapes` that fits the size; inf -> 0."""
    depth = np.frombuffer(data, dtype=np.float32).copy()
    for shape in shapes:
        if depth.size == shape[0] * shape[1]:
            depth[depth == np.inf] = 0.0
            return depth.reshape(shape)
    raise ValueError(f"{len(data)} bytes do not form a float32 map of shape "
                     f"{' or '.join(f'{h}x{w}' for h, w in shapes)}")


def decode_dpt(data: bytes) -> np.ndarray:
    """MPI Sintel `.dpt`: float32 tag 202021.25, int32 width, int32 height, float32 depth."""
    if len(data) < 12:
        raise ValueError("file too short for a .dpt header")
    tag = np.frombuffer(data, dtype="<f4", count=1)[0]
    width, height = np.frombuffer(data, dtype="<i4", count=2, offset=4)
    if tag != np.float32(SINTEL_DPT_TAG):
        raise ValueError(f"bad .dpt tag {tag} (expected {SINTEL_DPT_TAG})")
    if len(data) != 12 + 4 * int(width) * int(height):
        raise ValueError(f".dpt size does not match its header ({width}x{height})")
    return np.frombuffer(data, dtype="<f4", offset=12).reshape(int(height), int(width)).copy()
