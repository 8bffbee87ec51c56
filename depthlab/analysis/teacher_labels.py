"""How good is the label FiffDepth's t = -1 filter learns from? Scores the teacher's pseudo-label
under each label choice against the ground truth of `mini_real`, through the evaluation protocol:

    python -m depthlab.analysis.teacher_labels --weights runs/<a depth-space mini run>

Rows: the label in the teacher's own space (disparity; the default `SPACE`), and depth labels with
one fixed shift, with the shift fitted to an untrained and to a trained student's d0 (`--weights`,
a run trained with SPACE = 'depth'), and with the best shift per image chosen with the ground
truth (a ceiling, not a training option). Each label is aligned in its own space.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np
import torch

from depthlab.errors import cli_entry
from depthlab.eval.datasets import build_dataset
from depthlab.eval.runner import score_sample
from depthlab.inference.api import load_predictor
from depthlab.models.depth_model import DepthModel
from depthlab.targets import FixedShift, Space, StudentFittedShift, TargetEncoder, shifted_labels

EXPERIMENT = "experiments/mini/fiffdepth.gin"
METRICS = ["abs_rel", "delta1"]
ORACLE_SHIFTS = torch.logspace(-3, 1, 64)


def depth_model(weights: str | None) -> DepthModel:
    """The mini FiffDepth model in depth space (untrained, or `weights`)."""
    predictor = load_predictor([EXPERIMENT], weights, ["SPACE = 'depth'"], device="cpu",
                               processing_res=0)
    return predictor.model.eval()


def student_prediction(model: DepthModel, rgb: torch.Tensor) -> torch.Tensor:
    """The student's d0, decoded to its normalised [-1, 1] map (what a recipe would fit to)."""
    return model.codec.decode_depth(model.backbone(model.encode_rgb(rgb), 0.0))


def oracle_label(teacher: torch.Tensor, sample, clip) -> np.ndarray:
    """The depth label under the per-image shift that scores best against the ground truth."""
    unit = (TargetEncoder(Space.DISPARITY.value).from_teacher(teacher, Space.DISPARITY) + 1) / 2
    valid = torch.ones_like(unit, dtype=torch.bool)
    labels = shifted_labels(unit, ORACLE_SHIFTS, Space.DISPARITY, Space.DEPTH, valid)
    scored = [score_sample(((l[0] + 1) / 2).numpy(), sample, "depth", METRICS, clip)
              for l in labels]
    return ((labels[int(np.argmin([s["abs_rel"] for s in scored])), 0] + 1) / 2).numpy()


@torch.no_grad()
def measure(weights: str | None, length: int) -> dict[str, dict[str, float]]:
    """{label choice: {metric: mean over mini_real}}."""
    from depthlab.world.lowpass_teacher import lowpass_teacher

    teacher = lowpass_teacher()
    dataset = build_dataset("mini_real", None, length=length)
    clip = (dataset.min_depth, dataset.max_depth)
    students = {"untrained": depth_model(None)}
    if weights:
        students["trained"] = depth_model(weights)
    disparity = TargetEncoder(Space.DISPARITY.value)
    fixed = TargetEncoder(Space.DEPTH.value, FixedShift(0.05))
    fitted = TargetEncoder(Space.DEPTH.value, StudentFittedShift())
    rows: dict[str, list[dict]] = {}
    for index in range(len(dataset)):
        sample = dataset[index]
        rgb = torch.from_numpy(sample.rgb).permute(2, 0, 1)[None].float() / 255.0
        output = teacher(rgb)

        def add(name: str, label: torch.Tensor | np.ndarray, alignment: str) -> None:
            values = label if isinstance(label, np.ndarray) else ((label[0, 0] + 1) / 2).numpy()
            rows.setdefault(name, []).append(score_sample(values, sample, alignment, METRICS, clip))

        add("teacher itself (disparity)", output[0, 0].numpy(), "disparity")
        add("disparity label (SPACE = 'disparity')", disparity.from_teacher(output, "disparity"),
            "disparity")
        add("depth label, FixedShift(0.05)", fixed.from_teacher(output, "disparity"), "depth")
        for name, model in students.items():
            label = fitted.from_teacher(output, "disparity",
                                        student=student_prediction(model, rgb))
            add(f"depth label, StudentFittedShift ({name} student)", label, "depth")
        add("depth label, best shift per image from GT (ceiling)",
            oracle_label(output, sample, clip), "depth")
    return {name: {m: float(np.mean([r[m] for r in scores])) for m in METRICS}
            for name, scores in rows.items()}


def markdown(results: dict[str, dict[str, float]]) -> str:
    lines = ["| label | AbsRel % | δ1 % |", "|---|---:|---:|"]
    lines += [f"| {name} | {100 * m['abs_rel']:.2f} | {100 * m['delta1']:.2f} |"
              for name, m in results.items()]
    return "\n".join(lines)


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m depthlab.analysis.teacher_labels",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="a mini FiffDepth run trained with SPACE = 'depth'")
    parser.add_argument("--length", type=int, default=128, help="mini_real images (default 128)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(markdown(measure(args.weights, args.length)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
