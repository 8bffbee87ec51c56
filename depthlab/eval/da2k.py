"""DA-2K (Depth Anything V2): accuracy of the predicted order of annotated point pairs."""
from __future__ import annotations

import numpy as np

from depthlab.eval.alignment import closer_is_smaller


def pair_hits(pred: np.ndarray, pairs: np.ndarray, alignment: str) -> tuple[int, int]:
    """(correct, total) for `pairs` rows (h_closer, w_closer, h_farther, w_farther).

    `pred` is the raw map the `alignment` names: closer means a smaller value in depth space and
    in metres ('none'), a larger one in the disparity spaces. Ties count as wrong. No alignment is
    needed: a positive affine change keeps every order.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 4)
    height, width = pred.shape
    if pairs.size and (pairs.min() < 0 or pairs[:, [0, 2]].max() >= height
                       or pairs[:, [1, 3]].max() >= width):
        raise ValueError(f"a DA-2K point lies outside the {height}x{width} image")
    closer = pred[pairs[:, 0], pairs[:, 1]]
    farther = pred[pairs[:, 2], pairs[:, 3]]
    correct = closer < farther if closer_is_smaller(alignment) else closer > farther
    return int(np.count_nonzero(correct)), int(len(pairs))
