"""Low-pass teacher: the *ideal teacher* ablation, a simulated DINOv2-based depth teacher (Depth
Anything V2) that reads the true depth.

What it simulates, for the mini world. FiffDepth distils a feed-forward teacher whose predictions
are accurate in their low frequencies (global layout, relative ordering, scale of large
structures) but lack fine detail (thin structures, sharp boundaries), because DINOv2 features are
coarse. Such a teacher outputs an affine-invariant *disparity*. This one is ideal in everything
but detail: it never errs on layout, even on content no training set showed, so it is an upper
bound for what a learned teacher could give, not a stand-in for one.

How. There is no pretrained network here, so this teacher looks up the true depth of the image
it is given, converts it to disparity (sky / invalid = 0, i.e. infinitely far), blurs it with a
Gaussian (`sigma` pixels at a `reference_width`-pixel-wide image, scaled with the width) and
applies a random positive affine map (scale and shift drawn deterministically from the image
itself). The result: correct low frequencies, no fine detail, unknown scale and shift.

The lookup. The teacher's interface is "RGB batch in" and it never receives ground truth, so it
asks `depthlab.world.oracle`, keyed by a hash of the uint8-quantised pixels. The oracle is
opt-in: building this teacher enables it, and from then on the renderer registers every image
(and its mirror image) rendered in this process. So the teacher must be built *before* data is
rendered - as it is when gin builds the recipe before the first batch. Any other image - a photo,
a resized or augmented image, one rendered before the teacher existed, or one rendered in a
DataLoader worker process - raises a `UserError`.
"""
from __future__ import annotations

import hashlib

import gin
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from depthlab.errors import UserError
from depthlab.models.output_kind import OutputKind
from depthlab.teachers.base import Teacher, shared_instance
from depthlab.world import oracle


@gin.configurable
class LowPassTeacher(Teacher):
    """Ideal teacher: blurred true disparity under a random positive affine map (see the module
    docstring); building one enables the oracle."""

    output_kind = OutputKind.DISPARITY

    def __init__(self, sigma: float = 2.5, reference_width: int = 64,
                 max_log_scale: float = 1.0, max_shift: float = 0.3):
        super().__init__()
        self.sigma = float(sigma)
        self.reference_width = int(reference_width)
        self.max_log_scale = float(max_log_scale)
        self.max_shift = float(max_shift)
        oracle.enable()  # images rendered from now on are known (see the module docstring)

    def blurred_disparity(self, depth: np.ndarray) -> np.ndarray:
        """True depth [H, W] (0 = invalid / sky) -> Gaussian-blurred disparity [H, W]."""
        disparity = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0)
        sigma = self.sigma * depth.shape[1] / self.reference_width
        return gaussian_filter(disparity, sigma, mode="nearest")

    def affine(self, image: np.ndarray) -> tuple[float, float]:
        """Positive scale and shift (relative to the map's maximum), fixed per image content."""
        seed = int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        return (float(np.exp(rng.uniform(-self.max_log_scale, self.max_log_scale))),
                float(rng.uniform(0.0, self.max_shift)))

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise UserError(f"The low-pass teacher takes an RGB batch [B, 3, H, W]; it got a "
                            f"tensor of shape {tuple(rgb.shape)}.")
        images = oracle.quantise(rgb.detach().float().permute(0, 2, 3, 1).cpu().numpy())
        outputs = []
        for image in images:
            found = oracle.lookup(image)
            if found is None:
                raise UserError(
                    "The low-pass teacher only works on mini-world images rendered in this "
                    "process (it simulates a depth network by looking up the rendered depth). "
                    f"This {image.shape[1]}x{image.shape[0]} image is unknown: it is not from the "
                    "mini world, was resized or augmented (only horizontal flips are known), was "
                    "rendered before the teacher was built (build it before rendering data), or "
                    "was rendered in a DataLoader worker (use num_workers=0 with this teacher).")
            blurred = self.blurred_disparity(found[0])
            scale, shift = self.affine(image)
            outputs.append(scale * (blurred + shift * blurred.max()))
        out = torch.from_numpy(np.stack(outputs)[:, None].astype(np.float32))
        return out.to(device=rgb.device, dtype=rgb.dtype if rgb.is_floating_point() else None)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, reference_width={self.reference_width} (simulated teacher)"


@gin.configurable
def lowpass_teacher(sigma: float = 2.5, reference_width: int = 64, max_log_scale: float = 1.0,
                    max_shift: float = 0.3) -> LowPassTeacher:
    """The process-wide low-pass teacher for these settings (built once, then shared; every call
    enables the oracle, so a shared teacher keeps working after an `oracle.disable()`)."""
    oracle.enable()
    key = ("lowpass", float(sigma), int(reference_width), float(max_log_scale), float(max_shift))
    return shared_instance(key, lambda: LowPassTeacher(sigma, reference_width, max_log_scale,
                                                       max_shift))  # type: ignore[return-value]
