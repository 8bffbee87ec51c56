"""Evaluation: the Marigold affine-invariant protocol, boundary metrics and DA-2K.

Datasets live in `depthlab.eval.datasets`; `runner` scores a predictor or a folder of predictions
with one shared per-sample path (alignment -> clipping -> metrics); `report` writes the results.
"""
from depthlab.eval.datasets import (EvalDataset, EvalSample, SampleError, build_dataset,
                                    dataset_names, register_dataset)
from depthlab.eval.report import markdown_table, write_csv, write_json
from depthlab.eval.result import EvalResult
from depthlab.eval.runner import evaluate_prediction_dir, evaluate_predictor, score_sample

__all__ = ["EvalDataset", "EvalResult", "EvalSample", "SampleError", "build_dataset",
           "dataset_names", "evaluate_prediction_dir", "evaluate_predictor", "markdown_table",
           "register_dataset", "score_sample", "write_csv", "write_json"]
