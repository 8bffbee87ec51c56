"""The mini world's evaluation sets, `mini_synthetic` and `mini_real` (rendered test splits).

They go through the same registry, alignment and metrics as the protocol's sets, so the mini
world's numbers are computed exactly as NYUv2's would be. Ground truth is dense (sky excepted),
so boundary F1 is reported too.
"""
from __future__ import annotations

from dataclasses import dataclass, field


from depthlab.eval.datasets.registry import EvalSample, register_dataset
from depthlab.world.datasets import MiniWorldDataset
from depthlab.world.oracle import quantise

PROTOCOL_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2",
                    "delta3", "i_rmse", "silog")


@dataclass
class MiniWorldEvalSet:
    """A mini-world split as an `EvalDataset`; `data_dir` is unused (scenes are rendered)."""

    domain: str
    split: str = "test"
    size: int = 64
    length: int | None = None
    min_depth: float = 1e-3
    max_depth: float = 100.0
    processing_res: int = 0
    default_metrics: tuple[str, ...] = field(default=PROTOCOL_METRICS + ("boundary_f1",))

    def __post_init__(self) -> None:
        self.name = f"mini_{self.domain}"
        self.scenes = MiniWorldDataset(self.domain, self.split, self.size, self.length)

    def __len__(self) -> int:
        return len(self.scenes)

    def sample_id(self, index: int) -> str:
        return f"{self.domain}/{self.split}/{index:06d}"

    def __getitem__(self, index: int) -> EvalSample:
        item = self.scenes[index]
        rgb = quantise(item["rgb"].permute(1, 2, 0).numpy())
        return EvalSample(id=item["name"], rgb=rgb, depth=item["depth"][0].numpy(),
                          valid=item["valid"][0].numpy().astype(bool))


@register_dataset("mini_synthetic")
def mini_synthetic(data_dir: str | None = None, split_file: str | None = None, split: str = "test",
                   size: int = 64, length: int | None = None) -> MiniWorldEvalSet:
    return MiniWorldEvalSet("synthetic", split, size, length)


@register_dataset("mini_real")
def mini_real(data_dir: str | None = None, split_file: str | None = None, split: str = "test",
              size: int = 64, length: int | None = None) -> MiniWorldEvalSet:
    return MiniWorldEvalSet("real", split, size, length)
