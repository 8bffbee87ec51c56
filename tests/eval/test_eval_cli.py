"""`python -m depthlab.evaluate` end to end on small sets built from the real frames."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from eval_fixtures import (build_folder_redwood, build_folder_tum, build_kitti, build_nyu,
                           make_tar, requires_shared, run_cli, shipped_rows, write_predictions)
from depthlab.eval import EvalSample, build_dataset, evaluate_prediction_dir, register_dataset
from depthlab.eval.predictions import prediction_candidates
from depthlab.models.output_kind import OutputKind

pytestmark = requires_shared




@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """NYU and KITTI (folder and tar) in the protocol's layout, TUM and Redwood as `folder`,
    each with noisy affine predictions."""
    root = tmp_path_factory.mktemp("world")
    nyu, nyu_split = build_nyu(root)
    kitti, kitti_split = build_kitti(root)
    kitti_tar = make_tar(kitti, root / "kitti_eigen_split_test.tar")
    tum, redwood = build_folder_tum(root), build_folder_redwood(root)
    sets = {
        "nyu": (nyu, nyu_split, None), "kitti": (kitti_tar, kitti_split, None),
        "tum": (tum, None, 5000), "redwood": (redwood, None, 1000),
    }
    preds = {}
    for key, (data, split, scale) in sets.items():
        name = key if key in ("nyu", "kitti") else "folder"
        options = {"depth_scale": scale} if scale else {}
        preds[key] = write_predictions(root / "pred" / key,
                                       build_dataset(name, str(data), split and str(split),
                                                     **options))
    return types.SimpleNamespace(root=root, sets=sets, preds=preds, kitti_folder=kitti)


def test_four_sets_end_to_end(world, capsys, tmp_path):
    s, p = world.sets, world.preds
    output = tmp_path / "out" / "results.json"
    code, out, err = run_cli([
        "--predictions", p["tum"], p["kitti"], p["nyu"], p["redwood"],
        "--dataset", "folder", "kitti", "nyu", "folder",
        "--data-dir", s["tum"][0], s["kitti"][0], s["nyu"][0], s["redwood"][0],
        "--split", "-", s["kitti"][1], s["nyu"][1], "-",
        "--depth-scale", 5000, "-", "-", 1000, "--output", output], capsys)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("| ") and "Dataset" not in line]
    assert [r.split("|")[1].strip() for r in rows] == [
        "NYUv2", "KITTI", "folder (tum)", "folder (redwood)"]  # the papers' order first
    body = json.loads(output.read_text())
    results = {r["label"]: r for r in body["datasets"]}
    assert [r["count"] for r in body["datasets"]] == [3, 3, 1, 3]
    nyu = build_dataset("nyu", str(s["nyu"][0]), str(s["nyu"][1]))
    direct = evaluate_prediction_dir(p["nyu"], nyu, "depth", progress=False)
    assert results["NYUv2"]["metrics"] == direct.means
    assert direct.means["abs_rel"] < 0.03 and direct.means["delta1"] > 0.97
    abs_rel, delta1 = 100 * direct.means["abs_rel"], 100 * direct.means["delta1"]
    assert f"| {abs_rel:.2f} | {delta1:.2f} |" in rows[0]  # percent, AbsRel then delta1
    folder_metrics = results["folder (redwood)"]["metrics"]
    assert {"boundary_f1", "boundary_recall", "dbe_acc", "dbe_comp"} <= set(folder_metrics)
    assert 0.5 < folder_metrics["boundary_f1"] <= 1.0
    with open(output.with_suffix(".csv")) as handle:
        per_sample = list(csv.DictReader(handle))
    assert len(per_sample) == 10
    assert per_sample[0]["id"] == nyu.sample_id(0) and float(per_sample[0]["scale"]) > 0


def test_low_resolution_predictions_are_resized_to_gt(world, capsys, tmp_path):
    data, split, _ = world.sets["kitti"]
    dataset = build_dataset("kitti", str(world.kitti_folder), str(split))
    smooth = write_predictions(tmp_path / "pred", dataset,
                               lambda s: np.full(s.depth.shape, 1.0, np.float32)
                               + np.linspace(0, 1, s.depth.shape[0], dtype=np.float32)[:, None],
                               size=(176, 608))
    assert np.load(smooth / prediction_candidates(dataset.sample_id(0))[0]).shape == (176, 608)
    code, out, err = run_cli(["--predictions", smooth, "--dataset", "kitti", "--data-dir",
                              world.kitti_folder, "--split", split], capsys)
    assert code == 0, err
    assert "| KITTI | depth | 3 |" in out


def copy_predictions(world, tmp_path) -> Path:
    target = tmp_path / "pred"
    for path in world.preds["nyu"].rglob("*.npy"):
        destination = target / path.relative_to(world.preds["nyu"])
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes())
    return target


def nyu_args(world, preds):
    data, split, _ = world.sets["nyu"]
    return ["--predictions", preds, "--dataset", "nyu", "--data-dir", data, "--split", split]


def test_per_sample_alone_writes_the_csv(world, capsys, tmp_path):
    csv_path = tmp_path / "rows" / "per_sample.csv"
    code, _, err = run_cli(nyu_args(world, world.preds["nyu"]) + ["--per-sample", csv_path],
                           capsys)
    assert code == 0, err
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and float(rows[0]["abs_rel"]) < 0.05
    assert f"wrote {csv_path}" in err and not list(csv_path.parent.glob("*.json"))


def test_missing_prediction_stops_before_any_mean(world, capsys, tmp_path):
    preds = copy_predictions(world, tmp_path)
    sample_id = shipped_rows("nyu_depth/labeled/filename_list_test.txt", 3)[1][0]
    (preds / prediction_candidates(sample_id)[0]).unlink()
    code, out, err = run_cli(nyu_args(world, preds), capsys)
    assert code == 2 and out == ""
    assert sample_id in err and "missing prediction" in err and "--skip-bad" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("defect, message", [
    (lambda p: np.where(np.arange(p.size).reshape(p.shape) == 7, np.nan, p), "NaN"),
    (lambda p: p.T.copy(), "aspect ratios differ"),
    (lambda p: np.stack([p, p, p], axis=-1), "expected one HxW map"),
])
def test_bad_prediction_is_named_and_skip_bad_leaves_it_out(world, capsys, tmp_path, defect,
                                                            message):
    preds = copy_predictions(world, tmp_path)
    sample_id = shipped_rows("nyu_depth/labeled/filename_list_test.txt", 3)[2][0]
    path = preds / prediction_candidates(sample_id)[0]
    np.save(path, defect(np.load(path)))
    code, out, err = run_cli(nyu_args(world, preds), capsys)
    assert code == 2 and out == "" and sample_id in err and message in err
    output = tmp_path / "r.json"
    code, out, err = run_cli(nyu_args(world, preds) + ["--skip-bad", "--output", output], capsys)
    assert code == 0
    assert "left out 1 bad sample(s); 2 remain" in err and sample_id in err
    body = json.loads(output.read_text())
    assert body["count"] == 2 and body["skipped"][0]["id"] == sample_id


def test_corrupt_rgb_is_named(world, capsys, tmp_path):
    data, split = build_nyu(tmp_path)
    sample_id = shipped_rows("nyu_depth/labeled/filename_list_test.txt", 1)[0][0]
    (data / sample_id).write_bytes(b"not an image")
    code, out, err = run_cli(["--predictions", world.preds["nyu"], "--dataset", "nyu",
                              "--data-dir", data, "--split", split], capsys)
    assert code == 2 and out == "" and sample_id in err and "corrupt or unreadable" in err


def test_shipped_split_with_only_some_frames_present(world, capsys):
    data = world.sets["nyu"][0]
    fourth = shipped_rows("nyu_depth/labeled/filename_list_test.txt", 4)[3][0]
    code, out, err = run_cli(["--predictions", world.preds["nyu"], "--dataset", "nyu",
                              "--data-dir", data], capsys)
    assert code == 2 and fourth in err and "missing file" in err
    code, out, err = run_cli(["--predictions", world.preds["nyu"], "--dataset", "nyu",
                              "--data-dir", data, "--skip-bad"], capsys)
    assert code == 0 and "left out 651 bad sample(s); 3 remain" in err
    assert "| NYUv2 | depth | 3 |" in out


def test_metric_selection(world, capsys, tmp_path):
    data, _, scale = world.sets["redwood"]
    output = tmp_path / "r.json"
    code, _, err = run_cli(["--predictions", world.preds["redwood"], "--dataset", "folder",
                            "--data-dir", data, "--depth-scale", scale, "--metrics",
                            "abs_rel,delta1", "boundary_f1", "--output", output], capsys)
    assert code == 0, err
    assert list(json.loads(output.read_text())["metrics"]) == ["abs_rel", "delta1", "boundary_f1"]


@pytest.mark.parametrize("extra, message", [
    (["--depth-scale", "1000"], "applies to none of the datasets"),
    (["--metrics", "abs_rell"], "unknown metric"),
    (["--data-dir", "a", "b"], "--data-dir got 2 value(s) for 1 dataset"),
])
def test_user_mistakes(world, capsys, extra, message):
    argv = ["--predictions", world.preds["nyu"], "--dataset", "nyu"] + extra
    if "--data-dir" not in extra:
        argv += ["--data-dir", world.sets["nyu"][0]]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and message in err and out == ""


def test_module_entry_point_reports_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "depthlab.evaluate", "--predictions",
                             str(tmp_path), "--dataset", "nyu", "--data-dir",
                             str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: data directory for 'nyu' does not exist")
    assert "Traceback" not in result.stderr


@register_dataset("test_eth3d_like")
class ProcessingResWorld:
    """A registered set without data directory and with a non-native processing resolution."""

    name, min_depth, max_depth, processing_res = "test_eth3d_like", 1e-3, 10.0, 756
    default_metrics = ("abs_rel", "delta1")

    def __init__(self, data_dir, split_file=None):
        pass

    def __len__(self):
        return 1

    def sample_id(self, index):
        return "only.png"

    def __getitem__(self, index):
        depth = np.linspace(1, 4, 48 * 64, dtype=np.float32).reshape(48, 64)
        return EvalSample("only.png", np.full((48, 64, 3), 7, np.uint8), depth,
                          np.ones_like(depth, bool))


def test_model_path_uses_declared_space_and_processing_res(world, capsys, tmp_path, monkeypatch):
    nyu = build_dataset("nyu", str(world.sets["nyu"][0]), str(world.sets["nyu"][1]))
    truth = {nyu[i].rgb.tobytes(): nyu[i] for i in range(len(nyu))}
    calls = []

    class FakePredictor:
        output_kind = OutputKind.DISPARITY

        def __init__(self, res):
            self.res = res

        def predict(self, images):
            out = []
            for rgb in images:
                sample = truth.get(rgb.tobytes())
                if sample is None:  # the registered test set: its depth is a ramp
                    depth = np.linspace(1, 4, 48 * 64, dtype=np.float32).reshape(48, 64)
                else:
                    depth = np.where(sample.valid, sample.depth, 3.0)[::2, ::2]  # half size
                disparity = 1 / depth
                out.append(((disparity - disparity.min()) / np.ptp(disparity)).astype(np.float32))
            return out

    def load_predictor(gin_files, weights, bindings=(), processing_res=None, **kwargs):
        calls.append((list(gin_files), weights, list(bindings), processing_res))
        return FakePredictor(processing_res)

    monkeypatch.setitem(sys.modules, "depthlab.inference.api",
                        types.SimpleNamespace(load_predictor=load_predictor))
    output = tmp_path / "r.json"
    code, out, err = run_cli(["--gin", "exp.gin", "--weights", "runs/x", "--bind", "a.b = 1",
                              "--dataset", "nyu", "test_eth3d_like",
                              "--data-dir", world.sets["nyu"][0], "-",
                              "--split", world.sets["nyu"][1], "-", "--output", output], capsys)
    assert code == 0, err
    assert "warning: the model predicts" not in err  # its own space: nothing to warn of
    assert calls == [(["exp.gin"], "runs/x", ["a.b = 1"], 0),
                     (["exp.gin"], "runs/x", ["a.b = 1"], 756)]
    results = json.loads(output.read_text())["datasets"]
    assert [r["alignment"] for r in results] == ["disparity", "disparity"]
    assert results[0]["metrics"]["delta1"] > 0.97
    assert results[1]["metrics"]["abs_rel"] == pytest.approx(0, abs=1e-5)

    calls.clear()
    code, out, err = run_cli(["--gin", "exp.gin", "--dataset", "nyu", "--data-dir",
                              world.sets["nyu"][0], "--split", world.sets["nyu"][1],
                              "--alignment", "depth", "--processing-res", 512], capsys)
    assert code == 0 and calls == [(["exp.gin"], None, [], 512)]
    assert "| NYUv2 | depth | 3 |" in out
    warning = " ".join(err.split())
    assert warning.count("warning: the model predicts") == 1
    assert "--alignment depth fits its raw values as if they were depth" in warning
    assert "its own fit is --alignment disparity" in warning

    calls.clear()  # a run alone: the predictor is configured by the run's own config.gin
    code, out, err = run_cli(["--weights", "runs/x", "--dataset", "nyu", "--data-dir",
                              world.sets["nyu"][0], "--split", world.sets["nyu"][1]], capsys)
    assert code == 0 and calls == [([], "runs/x", [], 0)]

    code, out, err = run_cli(["--dataset", "nyu", "--data-dir", world.sets["nyu"][0]], capsys)
    assert code == 2 and "Nothing to evaluate" in err and "Traceback" not in err


@pytest.mark.parametrize("kind, alignment, warns", [
    (OutputKind.METRIC_DEPTH, "none", False),       # metres as they are
    (OutputKind.METRIC_DEPTH, "depth", False),      # metres fitted as affine depth: the same space
    (OutputKind.METRIC_DEPTH, "disparity", True),
    (OutputKind.SQRT_DISPARITY, "sqrt_disparity", False),
    (OutputKind.SQRT_DISPARITY, "depth", True),
    (OutputKind.SQRT_DISPARITY, "none", True),      # affine values scored as metres
    (OutputKind.DEPTH, "disparity", True),
])
def test_an_alignment_foreign_to_the_model_warns(kind, alignment, warns, capsys):
    from depthlab.eval.cli import _warn_foreign_alignment

    _warn_foreign_alignment(kind, alignment)
    assert ("warning: the model predicts" in capsys.readouterr().err) is warns
