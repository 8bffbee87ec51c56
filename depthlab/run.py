"""Train a recipe: `python -m depthlab.run --gin FILE [--gin FILE ...] [--bind 'NAME = VALUE' ...]`.

Files are parsed in order, bindings last. The run directory (default
`runs/<experiment>-<timestamp>`) receives config.gin, operative_config.gin, TensorBoard events,
checkpoints/, train.log and metrics.json.

Exit codes: 0 done; 2 a configuration mistake; 75 stopped by SIGTERM or SIGUSR1 after writing a
checkpoint (continue with --resume); 130 interrupted with Ctrl-C (a checkpoint is written too).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import gin

from depthlab import config, run_dir as runs
from depthlab.errors import EXIT_PREEMPTED, UserError, cli_entry
from depthlab.models.weights import latest_checkpoint


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m depthlab.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin", action="append", default=[], metavar="FILE",
                        help="gin file to parse (repeatable, in order)")
    parser.add_argument("--bind", action="append", default=[], metavar="'NAME = VALUE'",
                        help="gin binding applied after the files (repeatable)")
    parser.add_argument("--run-dir",
                        help="where to write the run (default runs/<experiment>-<time>)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue the run in --run-dir (or the latest run of this experiment)")
    mode.add_argument("--overwrite", action="store_true", help="delete --run-dir and start again")
    parser.add_argument("--list-blocks", action="store_true", help="list gin blocks and exit")
    return parser.parse_args(argv)


def setup_logging(run_dir: Path) -> None:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("depthlab")
    root.handlers = [handler]
    root.setLevel(logging.INFO)


def write_config(run_dir: Path, gin_files: list[str], bindings: list[str], name: str) -> None:
    header = [f"# depthlab run: {' '.join(sys.argv)}"] + [f"# --gin {f}" for f in gin_files] + \
        [f"# --bind {b}" for b in bindings]
    (run_dir / name).write_text("\n".join(header) + "\n\n" + gin.config_str())


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_blocks:
        print("\n".join(config.registered_blocks()))
        return 0
    if not args.gin:
        raise UserError("No recipe given: pass --gin FILE, e.g. --gin "
                        "experiments/mini/fiffdepth.gin.")
    config.parse_config(args.gin, args.bind)
    run_dir = runs.choose_run_dir(args.run_dir, runs.experiment_name(args.gin), args.resume,
                                  args.overwrite)
    from depthlab.train.loop import build_trainer  # heavy imports after the cheap checks
    from depthlab.train.signals import Preempted

    checkpoint = latest_checkpoint(run_dir) if args.resume else None
    _check_same_config(run_dir, checkpoint)
    trainer = build_trainer(run_dir)
    runs.prepare(run_dir, args.overwrite)
    setup_logging(run_dir)
    if checkpoint is None:
        write_config(run_dir, args.gin, args.bind, "config.gin")
        trainer.start_fresh()
    else:
        trainer.resume_from(checkpoint)
    print(f"run directory: {run_dir}", flush=True)
    try:
        trainer.run(on_first_step=lambda: (run_dir / "operative_config.gin").write_text(
            gin.operative_config_str()))
    except Preempted as stop:
        print(f"{stop.signal_name}: stopped after step {stop.step} and saved {stop.checkpoint}; "
              f"continue with the same --gin and --bind plus --resume --run-dir {run_dir}",
              file=sys.stderr)
        return EXIT_PREEMPTED
    print(f"metrics written to {run_dir / 'metrics.json'}")
    return 0


def _check_same_config(run_dir: Path, checkpoint: Path | None) -> None:
    """A resumed run must use the configuration it started with."""
    saved = run_dir / "config.gin"
    if checkpoint is None or not saved.exists():
        return
    body = saved.read_text().split("\n\n", 1)[-1]
    if body.strip() != gin.config_str().strip():
        raise UserError(f"--resume: the configuration differs from the one '{run_dir}' was "
                        f"started with ({saved}). Resume with the same --gin files and --bind "
                        f"values, or start a new run.")


if __name__ == "__main__":
    sys.exit(main())
