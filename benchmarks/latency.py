"""Latency and throughput of every inference mode, beside diffusers' `MarigoldDepthPipeline`.

    python benchmarks/latency.py                      # CUDA: SD2-sized, 512 and 768, bf16
    python benchmarks/latency.py --device cpu         # CPU: small configs, a smoke test

Weights do not change speed, so the UNets and the VAE are built from SD2's configs with random
weights (`--configs small` uses tiny widths, the default on CPU). Each (method, resolution,
batch) runs `--warmup` times, then `--repeats` timed runs; the table reports the median
per-image latency, the throughput and the peak memory over warm-up and timed runs (CUDA: peak
allocated; CPU: peak resident-set growth, indicative only since freed memory stays with the
process). Both sides take PIL images and return maps at the input resolution (processing
resolution 0), under the same autocast dtype. The CPU numbers of the smoke test say nothing
about GPU speed.
Results go to benchmarks/results/<device>-<date>.json and .md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import MarigoldDepthPipeline
from PIL import Image

from depthlab.inference.api import DTYPES, Predictor
from depthlab.models.modes import DirectLatentMode, E2EFTMode, LotusDMode, MarigoldMode
from depthlab.testing.tiny_models import (marigold_components, text_encoder, tiny_tokenizer,
                                          unet)
from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec
from depthlab.models.depth_model import DepthModel

RESULTS = Path(__file__).resolve().parent / "results"
SD2_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                norm_num_groups=32, use_linear_projection=True, upcast_attention=True,
                sample_size=96)
SD2_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
               sample_size=768)
PIPELINE = "diffusers MarigoldDepthPipeline (1 step)"


def device_slug(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        cpuinfo = Path("/proc/cpuinfo")
        text = cpuinfo.read_text() if cpuinfo.exists() else ""
        found = re.search(r"model name\s*:\s*(.+)", text)
        name = "cpu " + (found.group(1) if found else platform.processor() or platform.machine())
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def empty_prompt(tokenizer, encoder, pad: bool) -> torch.Tensor:
    padding = "max_length" if pad else "do_not_pad"
    tokens = tokenizer("", padding=padding, max_length=tokenizer.model_max_length,
                       return_tensors="pt")
    with torch.no_grad():
        return encoder(tokens.input_ids)[0]


def build(small: bool) -> tuple[dict[str, DepthModel], MarigoldDepthPipeline]:
    """The models of every mode (sharing UNets and VAE where methods share them) and the
    diffusers pipeline over the 8-channel UNet and the same VAE."""
    unet_config = {} if small else SD2_UNET
    parts = marigold_components(unet_config=unet_config, vae_config={} if small else SD2_VAE)
    codec = LatentCodec(parts["vae"])
    tokenizer = tiny_tokenizer()
    encoder = text_encoder(parts["unet"].config.cross_attention_dim, len(tokenizer))
    padded, bare = empty_prompt(tokenizer, encoder, True), empty_prompt(tokenizer, encoder, False)
    four = UNetBackbone(unet(4, **unet_config), padded)
    lotus = UNetBackbone(unet(4, lotus=True, **unet_config), padded)
    eight = UNetBackbone(parts["unet"], bare)
    models = {
        "FiffDepth (t=0)": DepthModel(four, codec, DirectLatentMode(0.0)),
        "DepthMaster (t=1)": DepthModel(four, codec, DirectLatentMode(1.0, "sqrt_disparity")),
        "E2E-FT (t=999)": DepthModel(eight, codec, E2EFTMode()),
        "Lotus-D (t=999)": DepthModel(lotus, codec, LotusDMode()),
        "Marigold (1 step)": DepthModel(eight, codec, MarigoldMode(steps=1, noise="zeros")),
    }
    for model in models.values():
        model.eval()
    pipeline = MarigoldDepthPipeline(**{**parts, "text_encoder": encoder, "tokenizer": tokenizer},
                                     prediction_type="depth")
    pipeline.set_progress_bar_config(disable=True)
    return models, pipeline


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak, or the RSS growth on CPU (sampled)."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb, self._running = device, 0.0, False

    @staticmethod
    def rss_mb() -> float:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * 4096 / 2 ** 20

    def _sample(self, baseline: float) -> None:
        while self._running:
            self.peak_mb = max(self.peak_mb, self.rss_mb() - baseline)
            time.sleep(0.002)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._running = True
            self._thread = threading.Thread(target=self._sample, args=(self.rss_mb(),))
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self._running = False
            self._thread.join()


def measure(run, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """(median seconds per call after `warmup` calls, peak memory MB over all calls)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with PeakMemory(device) as memory:
        for index in range(warmup + repeats):
            start = time.perf_counter()
            run()
            sync()
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times), memory.peak_mb


def benchmark(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    small = args.configs == "small"
    models, pipeline = build(small)
    pipeline.to(device)
    if args.compile:
        for model in models.values():
            model.backbone.unet.compile()  # shared UNets: compiling twice is a no-op
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            rng = np.random.default_rng(0)
            images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8))
                      for _ in range(batch)]
            runs = {name: Predictor(model, processing_res=0, batch_size=batch, device=args.device,
                                    dtype=args.dtype).predict
                    for name, model in models.items()}

            def reference(images: list[Image.Image], batch: int = batch) -> None:
                autocast = (contextlib.nullcontext() if DTYPES[args.dtype] == torch.float32
                            else torch.autocast(device.type, dtype=DTYPES[args.dtype]))
                with autocast:
                    pipeline(images, num_inference_steps=1, ensemble_size=1,
                             processing_resolution=0, batch_size=batch, output_type="np")

            runs[PIPELINE] = reference
            for name, predict in runs.items():
                def run(predict=predict) -> None:
                    with torch.inference_mode():
                        predict(images)
                seconds, peak = measure(run, device, args.warmup, args.repeats)
                rows.append(dict(method=name, resolution=size, batch=batch,
                                 latency_ms=1000 * seconds / batch, throughput=batch / seconds,
                                 peak_memory_mb=peak))
                print(f"{name:42s} {size:4d}px batch {batch}: {1000 * seconds / batch:9.1f} "
                      f"ms/image {batch / seconds:7.2f} images/s {peak:8.0f} MB", flush=True)
    return dict(device=device_slug(device), device_type=device.type, dtype=args.dtype,
                configs="small (smoke test)" if small else "SD2-sized, random weights",
                date=datetime.date.today().isoformat(), torch=torch.__version__,
                diffusers=diffusers.__version__, threads=torch.get_num_threads(),
                warmup=args.warmup, repeats=args.repeats, compile=args.compile, results=rows)


def markdown(report: dict) -> str:
    memory = "peak allocated" if report["device_type"] == "cuda" else "peak RSS growth"
    lines = [f"Device `{report['device']}`, {report['dtype']}, {report['configs']}, "
             f"{report['date']}, torch {report['torch']}, diffusers {report['diffusers']}, "
             f"{report['threads']} CPU thread(s); median of {report['repeats']} runs after "
             f"{report['warmup']} warm-up.", "",
             f"| method | resolution | batch | latency (ms/image) | throughput (images/s) | "
             f"{memory} (MB) |", "|---|---:|---:|---:|---:|---:|"]
    for row in report["results"]:
        lines.append(f"| {row['method']} | {row['resolution']} | {row['batch']} | "
                     f"{row['latency_ms']:.1f} | {row['throughput']:.2f} | "
                     f"{row['peak_memory_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                        help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--configs", choices=["sd2", "small"], default=None,
                        help="model sizes; default sd2 on CUDA, small on CPU")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile depthlab's UNets")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads; default 1 for the CPU smoke test (tiny models run "
                             "faster on one thread, and a busy machine cannot stall it)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    on_gpu = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bfloat16" if on_gpu else "float32")
    args.sizes = args.sizes or ([512, 768] if on_gpu else [64, 96])
    args.batches = args.batches or ([1, 4] if on_gpu else [1, 2])
    args.warmup = args.warmup if args.warmup is not None else (3 if on_gpu else 1)
    args.repeats = args.repeats or (10 if on_gpu else 3)
    args.configs = args.configs or ("sd2" if on_gpu else "small")
    if args.threads is None and not on_gpu and args.configs == "small":
        args.threads = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = benchmark(args)
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / f"{report['device']}-{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    stem.with_suffix(".md").write_text(table)
    print("\n" + table + f"\nwrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
