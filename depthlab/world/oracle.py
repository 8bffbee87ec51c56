"""Process-wide memory of the true depth behind mini-world images rendered in this process.

It exists for one consumer: the ideal-teacher ablation (`depthlab.world.lowpass_teacher`), a
simulated depth network that must answer from an RGB image alone. It is opt-in: `register` does
nothing until `enable()` is called (the teacher does so when it is built), so the default path
neither fills nor depends on it. Once enabled, the renderer registers each image (quantised to
uint8, as rendered) and its horizontal mirror, keyed by a hash of the pixels; lookups hash the
queried image the same way. The store is a bounded LRU, so memory stays flat however long
training runs. Images rendered before `enable()`, or in another process (a DataLoader worker),
are not known here.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

DEFAULT_CAPACITY = 4096  # scenes; about 20 KB each at 64x64

_STORE: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, bool]] = OrderedDict()
_LOCK = threading.Lock()
_capacity = DEFAULT_CAPACITY
_enabled = False


def enable() -> None:
    """Start remembering rendered images (called by the ideal teacher when it is built)."""
    global _enabled
    _enabled = True


def disable() -> None:
    """Stop remembering rendered images (the default; for tests). Known images stay known."""
    global _enabled
    _enabled = False


def is_enabled() -> bool:
    return _enabled


def image_key(image: np.ndarray) -> bytes:
    """Hash of a uint8 [H, W, 3] image (shape included)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    digest = hashlib.blake2b(image.tobytes(), digest_size=16)
    digest.update(np.asarray(image.shape, dtype=np.int64).tobytes())
    return digest.digest()


def quantise(rgb: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, rounding to the nearest level (robust to float noise)."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def register(image: np.ndarray, depth: np.ndarray, valid: np.ndarray) -> None:
    """Remember `depth`/`valid` ([H, W]) for uint8 `image` [H, W, 3] and for its mirror image
    (a no-op unless the oracle is enabled)."""
    if not _enabled:
        return
    entries = [(image_key(image), False), (image_key(image[:, ::-1]), True)]
    with _LOCK:
        for key, flipped in entries:
            _STORE[key] = (depth, valid, flipped)
            _STORE.move_to_end(key)
        while len(_STORE) > 2 * _capacity:
            _STORE.popitem(last=False)


def lookup(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """True (depth, valid) for uint8 `image` [H, W, 3], or None if it was not rendered here."""
    with _LOCK:
        entry = _STORE.get(image_key(image))
        if entry is None:
            return None
        _STORE.move_to_end(image_key(image))
    depth, valid, flipped = entry
    return (depth[:, ::-1].copy(), valid[:, ::-1].copy()) if flipped else (depth, valid)


def set_capacity(scenes: int) -> None:
    """Bound the store to `scenes` rendered images (each also stored mirrored)."""
    global _capacity
    with _LOCK:
        _capacity = max(1, int(scenes))
        while len(_STORE) > 2 * _capacity:
            _STORE.popitem(last=False)


def clear() -> None:
    with _LOCK:
        _STORE.clear()


def size() -> int:
    """Number of registered keys (two per scene: the image and its mirror)."""
    return len(_STORE)
