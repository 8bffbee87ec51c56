"""An unlabelled folder of photos (FiffDepth's real images): RGB only, never ground truth."""
from __future__ import annotations

from pathlib import Path

import gin
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from depthlab.data.images import read_rgb
from depthlab.errors import UserError
from depthlab.models.layout import macro_hint

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@gin.configurable
class ImageFolder(Dataset):
    """Every image under `data_dir` (recursively), resized to cover `resolution` and centre-cropped.

    Items are `{"rgb", "name"}` only: this stream cannot hand ground truth to a recipe.
    """

    def __init__(self, data_dir: str = gin.REQUIRED, resolution: tuple[int, int] = (480, 640)):
        root = Path(data_dir).expanduser()
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) \
            if root.is_dir() else []
        if not self.files:
            raise UserError(f"The real-image folder '{root}'{macro_hint(data_dir)} has no images "
                            f"(expected .jpg/.png/.webp files, in any subfolders).")
        self.root, self.resolution = root, tuple(resolution)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        rgb = read_rgb(self.files[index])
        return {"rgb": cover_crop(rgb, self.resolution),
                "name": str(self.files[index].relative_to(self.root))}


def cover_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize [C, H, W] so it covers `size` (bilinear, antialiased), then centre-crop to it."""
    height, width = image.shape[-2:]
    scale = max(size[0] / height, size[1] / width)
    new = (max(size[0], round(height * scale)), max(size[1], round(width * scale)))
    if new != (height, width):
        image = F.interpolate(image[None], size=new, mode="bilinear", antialias=True,
                              align_corners=False)[0]
    top, left = (new[0] - size[0]) // 2, (new[1] - size[1]) // 2
    return image[:, top:top + size[0], left:left + size[1]].clamp(0.0, 1.0)
