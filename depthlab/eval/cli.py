"""`python -m depthlab.evaluate`: score predictions or a depthlab model on evaluation sets."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from depthlab.errors import UserError
from depthlab.eval import report
from depthlab.eval.datasets import SampleError, build_dataset, dataset_names
from depthlab.eval.datasets.registry import EvalDataset, dataset_options
from depthlab.eval.metrics import ALL_METRICS, check_metric_names
from depthlab.eval.result import EvalResult
from depthlab.eval.runner import evaluate_prediction_dir, evaluate_predictor
from depthlab.eval.alignment import ALIGNMENTS, DOWNSCALE_MODES, WIDTH_ONLY
from depthlab.targets import Space

if TYPE_CHECKING:
    from depthlab.models.output_kind import OutputKind

MAX_LISTED_SKIPS = 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m depthlab.evaluate",
        description="Evaluate depth with the Marigold protocol: per-image least-squares "
                    "alignment of affine-invariant predictions (none for metric ones), metrics "
                    "averaged over images.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--predictions", nargs="+", metavar="DIR",
                        help="folder(s) of .npy predictions named after each RGB path; one per "
                             "dataset, or one holding a sub-folder per dataset name")
    source.add_argument("--gin", nargs="+", metavar="EXPERIMENT",
                        help="gin experiment file(s) of a depthlab model (default with "
                             "--weights: the run's own config.gin)")
    parser.add_argument("--weights", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="the run directory or checkpoint to load; alone, the model is "
                             "configured by the run's config.gin")
    parser.add_argument("--bind", action="append", default=[], metavar="BINDING",
                        help="with --gin: extra gin binding (repeatable)")
    parser.add_argument("--processing-res", type=int, metavar="PX",
                        help="with --gin: longer side at inference, 0 = native (default: the "
                             "protocol's per dataset: native, 756 ETH3D, 640 DIODE)")
    parser.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                        help=f"one or more of: {', '.join(dataset_names())}")
    parser.add_argument("--data-dir", nargs="+", default=[], metavar="DIR",
                        help="data folder or tar per dataset, in the order of --dataset")
    parser.add_argument("--split", nargs="+", default=[], metavar="FILE",
                        help="split list(s) replacing the shipped ones, in the order of --dataset "
                             "('-' keeps a dataset's own)")
    parser.add_argument("--alignment", choices=ALIGNMENTS,
                        help="space of the least-squares fit, or 'none' for metric predictions in "
                             "metres (default: what the model's declared output kind needs, "
                             "and another space is warned about; depth for --predictions)")
    parser.add_argument("--alignment-max-res", nargs="+", default=[], metavar="PX",
                        help="fit the scale and shift on a nearest-neighbour copy whose longer "
                             "side is at most PX, then apply them at full resolution, to "
                             "reproduce tables made that way (Marigold's ETH3D: 1024); one per "
                             "--dataset, '-' for the full-resolution fit (the default)")
    parser.add_argument("--alignment-downscale", choices=DOWNSCALE_MODES,
                        help="how --alignment-max-res shrinks the maps: "
                             f"'{WIDTH_ONLY}' (default) as the reference code, which shrinks "
                             "only the width (ETH3D 4032x6048 -> 4032x1024); 'both' shrinks "
                             "both sides by the same factor")
    parser.add_argument("--metrics", nargs="+", metavar="LIST",
                        help="metrics to compute, comma or space separated: "
                             + ", ".join(ALL_METRICS))
    parser.add_argument("--depth-scale", nargs="+", default=[], metavar="S",
                        help="folder: stored value of one metre in depth PNGs (1000 = mm); one "
                             "for all, or one per --dataset ('-' where unused)")
    parser.add_argument("--min-depth", nargs="+", default=[], metavar="M",
                        help="folder: smallest valid GT depth in metres (default 1e-3)")
    parser.add_argument("--max-depth", nargs="+", default=[], metavar="M",
                        help="folder: largest valid GT depth in metres (default: none)")
    parser.add_argument("--output", metavar="FILE.json",
                        help="write the means here, and the per-sample rows next to it as CSV")
    parser.add_argument("--per-sample", metavar="FILE.csv",
                        help="per-sample CSV path (default: <output>.csv; alone: only the CSV)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out samples with a missing or corrupt file or a bad "
                             "prediction, and report them (default: stop with an error)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.predictions and (args.weights or args.bind or args.processing_res is not None):
        raise UserError("--weights, --bind and --processing-res configure a model: use them with "
                        "--gin, not with --predictions")
    if not (args.predictions or args.gin or args.weights):
        raise UserError("Nothing to evaluate: give --predictions DIR, a model's --gin file(s), or "
                        "a run with --weights RUN_DIR (its config.gin configures the model).")
    names = args.dataset
    data_dirs = _per_dataset(args.data_dir, names, "--data-dir")
    splits = _per_dataset(args.split, names, "--split")
    metrics = _parse_metrics(args.metrics)
    options = {name: _numbers(getattr(args, name), names, name)
               for name in ("depth_scale", "min_depth", "max_depth")}
    for option, values in options.items():
        if any(v is not None for v in values) and not any(option in dataset_options(n)
                                                          for n in names):
            raise UserError(f"--{option.replace('_', '-')} applies to none of the datasets "
                            f"{', '.join(names)} (it is for 'folder')")
    fits = _fit_settings(args, names)
    datasets = [_build(name, data_dirs[i], splits[i], {k: v[i] for k, v in options.items()})
                for i, name in enumerate(names)]
    if args.predictions:
        results = _evaluate_predictions(args, datasets, metrics, fits)
    else:
        results = _evaluate_model(args, datasets, metrics, fits)
    _label_duplicates(results, data_dirs)
    for result in results:
        _report_skipped(result, args.output)
    print(report.markdown_table(results))
    csv_path = args.per_sample or (args.output and str(Path(args.output).with_suffix(".csv")))
    if args.output:
        report.write_json(results, args.output)
    if csv_path:
        report.write_csv(results, csv_path)
    written = [path for path in (args.output, csv_path) if path]
    if written:
        print(f"wrote {' and '.join(map(str, written))}", file=sys.stderr)
    return 0


def _per_dataset(values: list[str], names: list[str], flag: str,
                 broadcast: bool = False) -> list[str | None]:
    """One value per dataset ('-' = none); with `broadcast`, a single value serves all."""
    if not values:
        return [None] * len(names)
    if broadcast and len(values) == 1:
        values = values * len(names)
    if len(values) != len(names):
        raise UserError(f"{flag} got {len(values)} value(s) for {len(names)} dataset(s); give "
                        "one per --dataset, in the same order ('-' to leave one out)")
    return [None if v == "-" else v for v in values]


def _numbers(values: list[str], names: list[str], option: str) -> list[float | None]:
    flag = "--" + option.replace("_", "-")
    out = []
    for value in _per_dataset(values, names, flag, broadcast=True):
        try:
            out.append(None if value is None else float(value))
        except ValueError:
            raise UserError(f"{flag} expects numbers, got '{value}'") from None
    return out


def _fit_settings(args, names: list[str]) -> list[dict]:
    """Per dataset, the keyword arguments that set the resolution of the least-squares fit."""
    if args.alignment_downscale and not args.alignment_max_res:
        raise UserError("--alignment-downscale says how --alignment-max-res shrinks the maps for "
                        "the fit; give --alignment-max-res too (e.g. --alignment-max-res 1024 "
                        "for Marigold's ETH3D), or drop it to fit at full resolution.")
    mode = args.alignment_downscale or WIDTH_ONLY
    settings = []
    for value in _per_dataset(args.alignment_max_res, names, "--alignment-max-res"):
        if value is not None and not (value.isdigit() and int(value) > 0):
            raise UserError(f"--alignment-max-res expects a positive whole number of pixels (or "
                            f"'-' for a full-resolution fit), got '{value}'")
        settings.append({} if value is None else
                        {"alignment_max_res": int(value), "alignment_downscale": mode})
    return settings


def _parse_metrics(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return check_metric_names([m for v in values for m in v.split(",") if m])


def _build(name: str, data_dir: str | None, split: str | None, options: dict) -> EvalDataset:
    given = {k: v for k, v in options.items() if v is not None}
    accepted = {k: v for k, v in given.items() if k in dataset_options(name)}
    return build_dataset(name, data_dir, split, **accepted)


def _evaluate_predictions(args, datasets: list[EvalDataset], metrics,
                          fits: list[dict]) -> list[EvalResult]:
    folders = args.predictions
    if len(folders) == 1 and len(datasets) > 1:
        folders = [str(Path(folders[0]) / d.name) for d in datasets]
    elif len(folders) != len(datasets):
        raise UserError(f"--predictions got {len(folders)} folders for {len(datasets)} datasets")
    alignment = args.alignment or Space.DEPTH.value
    return [_guard(lambda: evaluate_prediction_dir(folder, dataset, alignment, metrics,
                                                   args.skip_bad, not args.no_progress, **fit))
            for folder, dataset, fit in zip(folders, datasets, fits)]


def _evaluate_model(args, datasets: list[EvalDataset], metrics,
                    fits: list[dict]) -> list[EvalResult]:
    from depthlab.inference.api import load_predictor  # heavy; only this path needs a model

    predictors: dict[int, Any] = {}
    results = []
    for dataset, fit in zip(datasets, fits):
        res = dataset.processing_res if args.processing_res is None else args.processing_res
        if res not in predictors:
            predictors[res] = load_predictor(args.gin or [], args.weights, args.bind,
                                             processing_res=res)
        predictor = predictors[res]
        alignment = args.alignment or predictor.output_kind.alignment
        if not results:
            _warn_foreign_alignment(predictor.output_kind, alignment)
        results.append(_guard(lambda: evaluate_predictor(
            lambda rgb: predictor.predict([rgb])[0], dataset, alignment, metrics,
            args.skip_bad, not args.no_progress, **fit)))
    return results


def _warn_foreign_alignment(kind: OutputKind, alignment: str) -> None:
    """Warn when --alignment treats the model's values as living in a space they do not: a fit
    in depth of a sqrt-disparity map scores near and far swapped, not the model."""
    if alignment in (kind.alignment, kind.space.value):
        return
    print(f"warning: the model predicts {kind.description}, but --alignment {alignment} fits its "
          f"raw values as if they were {alignment.replace('_', '-')}; the scores are of that "
          f"reading, not of the model (its own fit is --alignment {kind.alignment}).",
          file=sys.stderr)


def _guard(evaluate) -> EvalResult:
    try:
        return evaluate()
    except SampleError as error:
        raise UserError(f"{error}. Stopped before computing any mean; pass --skip-bad to leave "
                        "bad samples out and evaluate the rest.") from None


def _label_duplicates(results: list[EvalResult], data_dirs: list[str | None]) -> None:
    seen = [r.dataset for r in results]
    for result, data_dir in zip(results, data_dirs):
        if seen.count(result.dataset) > 1 and data_dir:
            result.label = f"{report.label(result)} ({Path(data_dir).name})"


def _report_skipped(result: EvalResult, output: str | None) -> None:
    if not result.skipped:
        return
    print(f"{report.label(result)}: left out {len(result.skipped)} bad sample(s); "
          f"{result.count} remain and are averaged", file=sys.stderr)
    for sample_id, reason in result.skipped[:MAX_LISTED_SKIPS]:
        print(f"  skipped {sample_id}: {reason}", file=sys.stderr)
    hidden = len(result.skipped) - MAX_LISTED_SKIPS
    if hidden > 0:
        where = f"all are listed in {output}" if output else "pass --output for the full list"
        print(f"  ... and {hidden} more ({where})", file=sys.stderr)
