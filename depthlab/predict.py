"""Predict depth for photos: `python -m depthlab.predict --gin EXPERIMENT --weights RUN
--input FILE_OR_DIR ... --output DIR`.

Writes NAME.npy (the raw float32 map: in [0, 1] for affine-invariant models, metres for metric
ones), NAME_16bit.png, NAME_color.png and optionally NAME.ply per image. A file that cannot be
read is reported and skipped; the others are still written and the exit code is 1 if anything
was skipped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from depthlab.errors import cli_entry
from depthlab.inference.api import DTYPES, load_predictor
from depthlab.inference.images import list_inputs, load_image
from depthlab.inference.outputs import OutputWriter, parse_kinds
from depthlab.inference.pointcloud import Intrinsics

EXIT_SKIPPED = 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m depthlab.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin", action="append", default=[], metavar="FILE",
                        help="experiment gin file(s); defaults to the run's config.gin")
    parser.add_argument("--bind", action="append", default=[], metavar="BINDING",
                        help="extra gin binding, e.g. \"PRETRAINED = '/models/marigold'\"")
    parser.add_argument("--weights", help="run directory, checkpoint directory or .safetensors "
                                          "(omit for a released checkpoint set in the gin file)")
    parser.add_argument("--input", nargs="+", required=True, metavar="FILE_OR_DIR")
    parser.add_argument("--output", required=True, type=Path, metavar="DIR")
    parser.add_argument("--processing-res", type=int, default=None, metavar="N",
                        help="longer side the network sees; 0 = native; default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--save", default="npy,png16,color", metavar="KINDS",
                        help="comma-separated subset of npy,png16,color,ply")
    parser.add_argument("--colormap", default="Spectral",
                        help="matplotlib colormap; its low end marks near points")
    parser.add_argument("--intrinsics", type=Intrinsics.parse, metavar="FX,FY,CX,CY",
                        help="pinhole intrinsics in input pixels, for ply; the principal point in "
                             "continuous coordinates (the first pixel's centre is 0.5, 0.5; add "
                             "0.5 to OpenCV's cx, cy)")
    parser.add_argument("--fov", type=float, default=60.0, metavar="DEG",
                        help="horizontal field of view for ply when no intrinsics are given")
    parser.add_argument("--depth-ratio", type=float, default=10.0, metavar="R",
                        help="far / near depth of the relative depth used for ply")
    return parser.parse_args(argv)


def output_names(files: Sequence[Path]) -> list[str]:
    """File stems, with a numeric suffix where two inputs share one (a.jpg and a.png)."""
    names, used = [], set()
    for file in files:
        name, count = file.stem, 1
        while name in used:
            count += 1
            name = f"{file.stem}_{count}"
        used.add(name)
        names.append(name)
    return names


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = parse_kinds(args.save)
    files = list_inputs(args.input)
    predictor = load_predictor(args.gin, args.weights, args.bind, args.processing_res,
                               batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                               compile=args.compile)
    writer = OutputWriter(args.output, kinds, predictor.output_kind, args.colormap, args.intrinsics,
                          args.fov, args.depth_ratio)
    jobs = list(zip(files, output_names(files)))
    skipped: list[str] = []
    with tqdm(total=len(jobs), unit="image", disable=len(jobs) < 2, file=sys.stderr) as bar:
        for start in range(0, len(jobs), args.batch_size):
            loaded = []
            for file, name in jobs[start:start + args.batch_size]:
                try:
                    loaded.append((name, load_image(file)))
                except Exception as error:  # any decoding failure: report the file, go on
                    skipped.append(str(file))
                    tqdm.write(f"skipped {file}: {type(error).__name__}: {error}", file=sys.stderr)
                    bar.update(1)
            for (name, rgb), unit in zip(loaded, predictor.predict([rgb for _, rgb in loaded])):
                writer.write(name, unit, rgb)
                bar.update(1)
    done = len(jobs) - len(skipped)
    print(f"wrote {done} prediction(s) ({predictor.output_kind.description}) to {args.output}"
          + (f"; skipped {len(skipped)} unreadable file(s): {', '.join(skipped)}" if skipped
             else ""), file=sys.stderr)
    return EXIT_SKIPPED if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
