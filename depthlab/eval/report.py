"""Writing results: JSON of the means, a per-sample CSV, and Markdown tables in the papers' order
(AbsRel and delta1 in percent, datasets as the papers list them)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

from depthlab.eval.result import EvalResult

PAPER_DATASET_ORDER = ("nyu", "kitti", "eth3d", "scannet", "diode")
DATASET_LABELS = {"nyu": "NYUv2", "kitti": "KITTI", "eth3d": "ETH3D", "scannet": "ScanNet",
                  "diode": "DIODE", "sintel": "Sintel", "ibims": "iBims-1", "da2k": "DA-2K"}
# (metric, column header, shown in percent)
COLUMNS = (
    ("abs_rel", "AbsRel (%) ↓", True), ("delta1", "δ1 (%) ↑", True), ("delta2", "δ2 ↑", False),
    ("delta3", "δ3 ↑", False), ("sq_rel", "SqRel ↓", False), ("rmse", "RMSE ↓", False),
    ("rmse_log", "RMSE-log ↓", False), ("log10", "log10 ↓", False), ("i_rmse", "iRMSE ↓", False),
    ("silog", "SILog ↓", False), ("boundary_f1", "Boundary F1 ↑", False),
    ("boundary_recall", "Boundary recall ↑", False), ("dbe_acc", "DBE acc ↓", False),
    ("dbe_comp", "DBE comp ↓", False), ("da2k_acc", "DA-2K acc (%) ↑", True),
)


def label(result: EvalResult) -> str:
    return result.label or DATASET_LABELS.get(result.dataset, result.dataset)


def alignment_label(result: EvalResult) -> str:
    """The alignment space, and the fit resolution when it was not the full one."""
    if result.alignment_max_res is None:
        return result.alignment
    return f"{result.alignment} (fit ≤{result.alignment_max_res}, {result.alignment_downscale})"


def result_dict(result: EvalResult) -> dict:
    body = {"dataset": result.dataset, "label": label(result), "alignment": result.alignment}
    if result.alignment_max_res is not None:
        body.update(alignment_max_res=result.alignment_max_res,
                    alignment_downscale=result.alignment_downscale)
    return {**body, "count": result.count, "inverted": result.inverted,
            "metrics": {k: _json_number(v) for k, v in result.means.items()},
            "skipped": [{"id": i, "reason": r} for i, r in result.skipped]}


def write_json(results: Sequence[EvalResult], path: str | Path) -> None:
    """One result as an object; several as {"datasets": [...]}, in table order."""
    ordered = ordered_results(results)
    body = result_dict(ordered[0]) if len(ordered) == 1 else {
        "datasets": [result_dict(r) for r in ordered]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(body, indent=2) + "\n")


def write_csv(results: Sequence[EvalResult], path: str | Path) -> None:
    """Per-sample rows of all results: dataset, id, scale, shift, then the metrics."""
    results = ordered_results(results)
    fields = ["dataset", "id"]
    for result in results:
        for row in result.per_sample:
            fields += [k for k in row if k not in fields]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for result in results:
            for row in result.per_sample:
                writer.writerow({"dataset": label(result), **row})


def ordered_results(results: Sequence[EvalResult]) -> list[EvalResult]:
    """The papers' dataset order (NYUv2, KITTI, ETH3D, ScanNet, DIODE), then the rest as given."""
    def rank(item: tuple[int, EvalResult]) -> tuple[int, int]:
        position, result = item
        if result.dataset in PAPER_DATASET_ORDER:
            return PAPER_DATASET_ORDER.index(result.dataset), position
        return len(PAPER_DATASET_ORDER), position
    return [r for _, r in sorted(enumerate(results), key=rank)]


def markdown_table(results: Sequence[EvalResult]) -> str:
    """One row per dataset; the columns of every metric any result has, in the papers' order."""
    ordered = ordered_results(results)
    present = {m for r in ordered for m in r.means}
    columns = [c for c in COLUMNS if c[0] in present]
    header = ["Dataset", "Align", "N"] + [c[1] for c in columns]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for result in ordered:
        cells = [label(result), alignment_label(result), str(result.count)]
        for metric, _, percent in columns:
            value = result.means.get(metric)
            cells.append(_format(value, percent))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format(value: float | None, percent: bool) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value
