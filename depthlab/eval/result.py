"""The result of evaluating one model or prediction folder on one evaluation set (written by
`depthlab.eval.report`)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class EvalResult:
    """Mean metrics over the evaluated samples, the per-sample rows and the skipped samples."""

    dataset: str
    alignment: str
    metrics: list[str]
    means: dict[str, float]
    count: int
    per_sample: list[dict]
    skipped: list[tuple[str, str]]
    label: str = ""
    alignment_max_res: int | None = None  # set when the fit ran on a downscaled copy
    alignment_downscale: str | None = None  # how that copy was shrunk (see `FitDownscale`)

    @property
    def inverted(self) -> int:
        """Samples whose least-squares fit took a negative scale: the prediction is inverted
        there (near and far swapped), which the protocol's fit hides from every metric."""
        return sum(1 for row in self.per_sample if row.get("scale", 1.0) < 0)
