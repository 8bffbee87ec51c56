"""Evaluation during and after training, through the same code as `python -m depthlab.evaluate`."""
from __future__ import annotations

from typing import Mapping

from depthlab.eval.datasets import build_dataset
from depthlab.eval.runner import evaluate_predictor
from depthlab.inference.api import Predictor
from depthlab.models.output_kind import DepthPredictorModule

TABLE_COLUMNS = (("abs_rel", "AbsRel %", 100.0), ("delta1", "δ1 %", 100.0),
                 ("rmse", "RMSE", 1.0), ("silog", "SILog", 1.0),
                 ("boundary_f1", "Boundary F1", 1.0))

EvalSpec = Mapping[str, "str | None | Mapping[str, object]"]


def evaluate_sets(model: DepthPredictorModule, eval_sets: EvalSpec,
                  processing_res: int | None = None, device: str | None = None,
                  progress: bool = True) -> dict[str, dict[str, float]]:
    """{eval_set: {metric: mean}} for `model` (a trained model, a teacher, any predictor) through
    `Predictor`, aligned as its output kind requires (a least-squares fit, or none for metres).

    Each value of `eval_sets` is the set's data directory (None for built-in sets) or a dict of
    options for its factory, e.g. {'data_dir': '/data/nyu'} or {'length': 16} for a mini-world set.
    """
    predictor = Predictor(model, processing_res=processing_res, device=device)
    results = {}
    for name, spec in eval_sets.items():
        options = dict(spec) if isinstance(spec, Mapping) else {"data_dir": spec}
        dataset = build_dataset(name, options.pop("data_dir", None), **options)
        result = evaluate_predictor(lambda rgb: predictor.predict([rgb])[0], dataset,
                                    alignment=model.output_kind.alignment, progress=progress)
        results[name] = {**result.means, "count": result.count, "inverted": result.inverted}
    return results


def format_comparison(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Markdown table, a row per (eval set, model); `results` is {model: {set: {metric: v}}}."""
    sets = list(dict.fromkeys(s for per_model in results.values() for s in per_model))
    shown = [c for c in TABLE_COLUMNS
             if any(c[0] in m for per_model in results.values() for m in per_model.values())]
    lines = ["| eval set | model | " + " | ".join(label for _, label, _ in shown) + " |",
             "|---|---|" + "---:|" * len(shown)]
    for eval_set in sets:
        for model, per_set in results.items():
            if eval_set in per_set:
                metrics = per_set[eval_set]
                cells = [f"{metrics[key] * scale:.2f}" if key in metrics else "-"
                         for key, _, scale in shown]
                lines.append(f"| {eval_set} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
