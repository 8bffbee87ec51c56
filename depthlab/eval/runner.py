"""Evaluate a predictor or a folder of predictions on an evaluation set.

Both paths share `score_sample` (check and resize -> alignment -> clipping -> metrics), which the
trainer's validation also uses, so every number depthlab reports comes from one code path.
"""
from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from depthlab.errors import UserError
from depthlab.eval.alignment import (FitDownscale, align, check_alignment, check_fit_settings,
                                     clip_prediction, fit_downscale)
from depthlab.eval.boundary import (boundary_f1, boundary_recall, depth_boundary_error,
                                    gt_depth_edges)
from depthlab.eval.da2k import pair_hits
from depthlab.eval.datasets.registry import EvalDataset, EvalSample, SampleError
from depthlab.eval.metrics import (BOUNDARY_METRICS, PAIR_METRICS, PROTOCOL_METRICS,
                                   check_metric_names, depth_metrics)
from depthlab.eval.predictions import load_prediction, prepare_prediction
from depthlab.eval.result import EvalResult

log = logging.getLogger(__name__)


def score_sample(pred: np.ndarray, sample: EvalSample, alignment: str,
                 metrics: Sequence[str], clip: tuple[float, float],
                 downscale: FitDownscale | None = None) -> dict:
    """Metrics of one raw prediction (any resolution) against one sample: aligned in the space
    `alignment` names (fitted on a smaller copy with `downscale`), or taken as metres with
    alignment 'none'."""
    alignment = check_alignment(alignment)
    pred = prepare_prediction(pred, sample.id, sample.depth.shape)
    record: dict = {"id": sample.id}
    if any(m not in PAIR_METRICS for m in metrics):
        if not sample.valid.any():
            raise SampleError(sample.id, "no valid ground-truth pixel")
        try:
            aligned = align(pred, sample.depth, sample.valid, alignment, downscale)
        except (ValueError, np.linalg.LinAlgError) as error:
            raise SampleError(sample.id, f"cannot align the prediction: {error}") from None
        depth = clip_prediction(aligned.depth, *clip)
        record.update(scale=aligned.scale, shift=aligned.shift)
        record.update(depth_metrics(depth, sample.depth, sample.valid,
                                    [m for m in metrics if m in PROTOCOL_METRICS]))
        record.update(_boundary_metrics(depth, sample, metrics))
    if "da2k_acc" in metrics:
        if sample.pairs is None:
            raise SampleError(sample.id, "da2k_acc needs annotated point pairs (dataset da2k)")
        hits, total = pair_hits(pred, sample.pairs, alignment)
        record.update(da2k_acc=hits / total if total else math.nan, da2k_pairs=total)
    return record


def _boundary_metrics(depth: np.ndarray, sample: EvalSample, metrics: Sequence[str]) -> dict:
    """Boundary F1 over neighbour pairs that both have GT; recall where a mask ships; DBE on the
    shipped GT edges or, without them, Canny edges of the GT."""
    out: dict = {}
    has_gt = np.isfinite(sample.depth) & (sample.depth > 0)
    gt = np.where(has_gt, sample.depth, 0).astype(np.float32)
    if "boundary_f1" in metrics:
        out["boundary_f1"] = boundary_f1(depth, gt, None if has_gt.all() else has_gt)
    if "boundary_recall" in metrics:
        out["boundary_recall"] = (math.nan if sample.mask is None
                                  else boundary_recall(depth, sample.mask))
    if "dbe_acc" in metrics or "dbe_comp" in metrics:
        edges = sample.edges if sample.edges is not None else gt_depth_edges(gt, has_gt)
        acc, comp = depth_boundary_error(depth, edges)
        out.update({k: v for k, v in (("dbe_acc", acc), ("dbe_comp", comp)) if k in metrics})
    return out


def resolve_metrics(metrics: Sequence[str] | None, dataset: EvalDataset) -> list[str]:
    return check_metric_names(list(dataset.default_metrics) if metrics is None else metrics)


def clip_range(dataset: EvalDataset) -> tuple[float, float]:
    """The prediction clip: the set's own (DIODE) or its valid depth range."""
    clip = getattr(dataset, "prediction_clip", None)
    return tuple(clip) if clip is not None else (dataset.min_depth, dataset.max_depth)


def mean_metrics(per_sample: list[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Mean over images; DA-2K over pairs; boundary metrics over images where they are defined."""
    means = {}
    for name in metrics:
        values = np.array([r[name] for r in per_sample], dtype=np.float64)
        if name == "da2k_acc":
            weights = np.array([r["da2k_pairs"] for r in per_sample], dtype=np.float64)
            total = weights.sum()
            means[name] = float(np.sum(values * weights) / total) if total else math.nan
        elif name in BOUNDARY_METRICS:
            defined = values[~np.isnan(values)]
            means[name] = float(defined.mean()) if defined.size else math.nan
        else:
            means[name] = float(values.mean())
    return means


def _evaluate(dataset: EvalDataset, get_prediction: Callable[[int, EvalSample], np.ndarray],
              alignment: str, metrics: Sequence[str] | None, skip_bad: bool, progress: bool,
              downscale: FitDownscale | None) -> EvalResult:
    names = resolve_metrics(metrics, dataset)
    alignment = check_alignment(alignment)
    check_fit_settings(alignment, downscale)
    clip = clip_range(dataset)
    per_sample, skipped = [], []
    for index in tqdm(range(len(dataset)), desc=f"evaluating {dataset.name}",
                      disable=None if progress else True, dynamic_ncols=True):
        try:
            sample = dataset[index]
            per_sample.append(score_sample(get_prediction(index, sample), sample, alignment, names,
                                           clip, downscale))
        except SampleError as error:
            if not skip_bad:
                raise
            skipped.append((error.sample_id, error.reason))
    if not per_sample:
        raise UserError(f"no sample of '{dataset.name}' could be evaluated "
                        f"({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})"
                        if skipped else f"dataset '{dataset.name}' has no samples")
    result = EvalResult(dataset=dataset.name, alignment=alignment, metrics=names,
                        means=mean_metrics(per_sample, names), count=len(per_sample),
                        per_sample=per_sample, skipped=skipped,
                        alignment_max_res=None if downscale is None else downscale.max_res,
                        alignment_downscale=None if downscale is None else downscale.mode)
    if result.inverted:
        message = (f"warning: on '{dataset.name}', {result.inverted} of {result.count} "
                   f"predictions were fitted with a negative scale, i.e. they are inverted (near "
                   f"and far swapped); the least-squares protocol scores them as if they were "
                   f"not. Per-sample scales are in the per-sample results.")
        log.info(message)  # into a run's train.log; the console gets the print below
        print(message, file=sys.stderr)
    return result


def evaluate_predictor(predict: Callable[[np.ndarray], np.ndarray], dataset: EvalDataset,
                       alignment: str, metrics: Sequence[str] | None = None,
                       skip_bad: bool = False, progress: bool = True, *,
                       alignment_max_res: int | None = None,
                       alignment_downscale: str | None = None) -> EvalResult:
    """Run `predict` (HxWx3 uint8 RGB -> a map any resolution: affine-invariant in the space
    `alignment` names, or metres for alignment 'none') on every sample and score it.

    The fit runs at full resolution unless `alignment_max_res` is set: then on a nearest-neighbour
    copy at most that large, shrunk as `alignment_downscale` says ('reference_width_only', the
    default: the reference's width-only resize; or 'both'), to reproduce tables made that way
    (Marigold's ETH3D: 1024). See `depthlab.eval.alignment.FitDownscale`.
    """
    downscale = fit_downscale(alignment_max_res, alignment_downscale)
    return _evaluate(dataset, lambda index, sample: predict(sample.rgb), alignment, metrics,
                     skip_bad, progress, downscale)


def evaluate_prediction_dir(predictions_dir: str | Path, dataset: EvalDataset, alignment: str,
                            metrics: Sequence[str] | None = None, skip_bad: bool = False,
                            progress: bool = True, *, alignment_max_res: int | None = None,
                            alignment_downscale: str | None = None) -> EvalResult:
    """Score `.npy` predictions named after each sample's RGB path (extension replaced); the
    alignment resolution settings are those of `evaluate_predictor`."""
    downscale = fit_downscale(alignment_max_res, alignment_downscale)
    root = Path(predictions_dir)
    if not root.is_dir():
        raise UserError(f"predictions directory does not exist: {root}")
    return _evaluate(dataset, lambda index, sample: load_prediction(root, dataset.sample_id(index)),
                     alignment, metrics, skip_bad, progress, downscale)
