"""benchmarks/latency.py runs end to end on CPU and writes its JSON and Markdown table."""
from __future__ import annotations

import importlib.util
import json

from inference_helpers import REPO_ROOT


def test_latency_benchmark_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("latency", REPO_ROOT / "benchmarks/latency.py")
    latency = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency)
    assert latency.main(["--device", "cpu", "--sizes", "32", "--batches", "1", "2", "--warmup",
                         "0", "--repeats", "1", "--output", str(tmp_path)]) == 0
    [report] = [json.loads(p.read_text()) for p in tmp_path.glob("cpu-*.json")]
    methods = {row["method"] for row in report["results"]}
    assert latency.PIPELINE in methods and len(methods) == 6
    assert len(report["results"]) == 12
    assert all(row["latency_ms"] > 0 and row["throughput"] > 0 for row in report["results"])
    assert list(tmp_path.glob("cpu-*.md"))
