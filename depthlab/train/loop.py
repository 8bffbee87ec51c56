"""The one training loop every recipe runs through.

It knows nothing about any method: it asks the recipe for the losses of a batch, the parameters
to train, the work after each optimizer step, the state to checkpoint and the models to evaluate
(see `depthlab.recipes.base`). The loop owns devices, precision, optimisation, initialisation from
earlier runs, logging, checkpoints, preemption and the final evaluation.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import gin
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from depthlab.config import build
from depthlab.data.mixing import MixedBatches, batch_loader
from depthlab.errors import UserError
from depthlab.models.freezing import frozen_parameter_owners
from depthlab.models.weights import InitialiseFrom
from depthlab.recipes.base import Panel, ParameterGroup, Recipe
from depthlab.train import checkpoint as ckpt
from depthlab.train.evaluation import evaluate_sets, format_comparison
from depthlab.train.optim import (OptimizerFactory, ScheduleFactory, adamw,
                                  warmup_exponential_decay)
from depthlab.train.signals import Preempted, preemption_watch
from depthlab.train.tensorboard import BoardWriter

log = logging.getLogger("depthlab.train")
INITIALISED_FILE = "initialised_from.json"


def pick_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu' or 'cuda' force one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def step_generator(seed: int, step: int, micro_step: int) -> torch.Generator:
    """Noise and timestep draws are a function of (seed, step), so a resumed run replays them."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 4099 + micro_step)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def build_trainer(run_dir: Path) -> "Trainer":
    """Seed every RNG with `Trainer.seed`, then build the trainer (and with it the recipe) from
    the parsed gin configuration, so a run is reproducible down to its initialisation."""
    try:
        seed = int(gin.query_parameter("Trainer.seed"))
    except ValueError:  # not bound: the signature's default
        seed = Trainer.DEFAULT_SEED
    seed_everything(seed)
    return build(lambda: Trainer(run_dir=run_dir), "trainer")


def check_parameter_groups(recipe: nn.Module,
                           groups: Sequence[ParameterGroup]) -> dict[str, nn.Parameter]:
    """{name: parameter} of everything the groups train, refusing parameters of frozen modules,
    parameters without gradients, parameters outside the recipe and duplicates."""
    names: dict[int, str] = {}
    for name, parameter in recipe.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), name)
    frozen = frozen_parameter_owners(recipe)
    trained: dict[str, nn.Parameter] = {}
    for group in groups:
        for parameter in group.parameters:
            name = names.get(id(parameter))
            problem = None
            if name is None:
                problem = "a parameter that is not part of the recipe"
            elif id(parameter) in frozen:
                problem = f"'{name}' of the frozen module '{frozen[id(parameter)]}'"
            elif not parameter.requires_grad:
                problem = f"'{name}', which does not require gradients"
            elif name in trained:
                problem = f"'{name}' a second time"
            if problem:
                raise UserError(f"The recipe's parameter group '{group.name}' contains {problem}. "
                                f"Teachers, encoders, codecs and frozen copies never train; check "
                                f"{type(recipe).__name__}.parameter_groups().")
            trained[name] = parameter
    if not trained:
        raise UserError(f"{type(recipe).__name__} has nothing to train: its parameter groups are "
                        f"empty.")
    return trained


def evaluated_prefixes(recipe: Recipe) -> dict[str, str]:
    """{DepthModel child: its path in the recipe} for the model the recipe evaluates."""
    model = recipe.evaluated_model()
    if model is None:
        return {}
    paths: dict[int, str] = {}
    for name, module in recipe.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), name)
    return {child: paths[id(module)] for child, module in model.named_children()
            if id(module) in paths}


@gin.configurable
class Trainer:
    """Trains `recipe` on `data` for `steps` optimizer steps, writing everything to `run_dir`.

    `optimizer` and `lr_schedule` are uncalled gin references to blocks of `depthlab.train.optim`
    (`@adamw`, `@adam`; `@warmup_exponential_decay`, `@warmup_cosine`, `@constant_lr`).
    `initialise` lists `InitialiseFrom` blocks applied when a run starts (not on `--resume`).
    `eval_sets` maps evaluation-set names (see `depthlab.eval.datasets`) to their data directory
    (None for built-in sets); they are evaluated at the end (and every `validate_every` steps
    when > 0). `mixed_precision='bf16'` applies only on CUDA; CPU runs are float32. `seed` seeds
    every RNG before the recipe is built (`build_trainer`) and the per-step draws. `num_threads`
    sets torch's intra-op threads (None: torch's default); one is fastest for tiny models on a
    busy CPU.
    """

    DEFAULT_SEED = 0

    def __init__(self, run_dir: Path, recipe: Recipe = gin.REQUIRED,
                 data: MixedBatches = gin.REQUIRED, steps: int = gin.REQUIRED,
                 optimizer: OptimizerFactory = adamw,
                 lr_schedule: ScheduleFactory = warmup_exponential_decay,
                 initialise: Sequence[InitialiseFrom] = (), accumulation_steps: int = 1,
                 clip_grad_norm: float | None = 1.0, device: str = "auto",
                 mixed_precision: str = "bf16", gradient_checkpointing: bool = False,
                 seed: int = DEFAULT_SEED, log_every: int = 10, image_every: int = 100,
                 checkpoint_every: int = 100, keep_checkpoints: int = 2,
                 eval_sets: Mapping[str, str | None] = gin.REQUIRED, validate_every: int = 0,
                 processing_res: int | None = None, evaluate_references: bool = True,
                 progress: bool = True, num_threads: int | None = None):
        if num_threads:
            torch.set_num_threads(num_threads)
        self.run_dir = Path(run_dir)
        self.device = pick_device(device)
        self.recipe = recipe.to(self.device)
        self.data, self.steps, self.seed = data, steps, seed
        self.accumulation_steps, self.clip_grad_norm = accumulation_steps, clip_grad_norm
        self.autocast_dtype = torch.bfloat16 if (mixed_precision == "bf16"
                                                 and self.device.type == "cuda") else None
        if gradient_checkpointing:
            self.recipe.enable_gradient_checkpointing()
        groups = self.recipe.parameter_groups()
        self.trained = check_parameter_groups(self.recipe, groups)
        self.optimizer = optimizer(groups)
        self.scheduler = lr_schedule(self.optimizer, steps)
        self.initialise = list(initialise)
        self.log_every, self.image_every = log_every, image_every
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.eval_sets, self.validate_every = dict(eval_sets), validate_every
        self.processing_res, self.evaluate_references = processing_res, evaluate_references
        self.progress = progress
        self.start_step = 0

    # -- state -------------------------------------------------------------------------------
    def start_fresh(self) -> None:
        """Apply the `initialise` blocks, record the exact files they read, and let the recipe
        react (`Recipe.after_initialisation`: an EMA restarts from the loaded weights)."""
        record = []
        for block in self.initialise:
            file = block.apply(self.recipe)
            record.append(block.describe(file))
            log.info("initialised %s from %s", block.target, file)
        if record:
            (self.run_dir / INITIALISED_FILE).write_text(json.dumps(record, indent=2))
        self.recipe.after_initialisation()

    def resume_from(self, checkpoint: Path) -> None:
        """Restore weights, extra state, optimizer, schedule and RNG; training continues after
        the checkpoint's step. Initialised modules that are not trained (frozen copies) are not
        in the checkpoint: they are reloaded from the files recorded when the run started."""
        self._reload_untrained_initialisations()
        ckpt.load_trained_weights(self.trained, checkpoint)
        self.recipe.load_extra_state(ckpt.load_extra_state(checkpoint))
        state = ckpt.load_training_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_state(state["rng"])
        self.start_step = state["step"]
        log.info("resumed from %s (step %d)", checkpoint, self.start_step)

    def _reload_untrained_initialisations(self) -> None:
        record_file = self.run_dir / INITIALISED_FILE
        record = json.loads(record_file.read_text()) if record_file.exists() else []
        trained = set(self.trained)
        for block, entry in zip(self.initialise, record):
            module = self.recipe.get_submodule(block.target)
            names = {f"{block.target}.{n}" if block.target else n
                     for n, _ in module.named_parameters()}
            if names <= trained:
                continue  # the checkpoint holds all of it
            file = Path(entry["source"])
            if not file.is_file():
                raise UserError(f"--resume: '{block.target}' was initialised from '{file}' when "
                                f"this run started, and it is not trained, so it must be reloaded "
                                f"from there; that file no longer exists.")
            block.apply(self.recipe, file)

    def save(self, step: int) -> Path:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        return ckpt.save_checkpoint(self.run_dir, step, self.trained, state,
                                    extra=self.recipe.extra_state(),
                                    evaluated=evaluated_prefixes(self.recipe),
                                    keep=self.keep_checkpoints)

    # -- training ----------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self, step: int, micro_batches) -> dict[str, float]:
        """One optimizer step over `accumulation_steps` micro-batches; returns scalars to log."""
        self.recipe.train()
        with_panels = self.image_every > 0 and step % self.image_every == 0
        started, images, sums = time.perf_counter(), 0, {}
        for micro, batch in enumerate(micro_batches):
            batch = batch.to(self.device)
            with self._autocast():
                out = self.recipe.losses(batch, step_generator(self.seed, step, micro),
                                         with_panels=with_panels and micro == 0)
            (out.total / self.accumulation_steps).backward()
            images += batch.size
            for name, value in {"total": out.total, **out.terms}.items():
                share = float(value.detach()) / self.accumulation_steps
                sums[name] = sums.get(name, 0.0) + share
            if with_panels and micro == 0:
                self._write_panels(batch, out.panels, step)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            list(self.trained.values()), self.clip_grad_norm or float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.recipe.after_optimizer_step(step + 1)
        scalars = {f"loss/{k}": v for k, v in sums.items()}
        scalars.update({"train/learning_rate": self.scheduler.get_last_lr()[0],
                        "train/grad_norm": float(grad_norm),
                        "train/images_per_second": images / (time.perf_counter() - started)})
        return scalars

    def _write_panels(self, batch, panels: dict[str, Panel], step: int) -> None:
        rgb = {}
        if batch.labelled is not None:
            rgb["synthetic/rgb"] = Panel(batch.labelled.rgb)
        if batch.unlabelled is not None:
            rgb["real/rgb"] = Panel(batch.unlabelled.rgb)
        self.board.panels({**rgb, **panels}, step)

    def run(self, on_first_step: Callable[[], None] | None = None) -> dict[str, dict[str, float]]:
        """Train from `start_step` to `steps`, then evaluate; returns {eval_set: {metric: v}}.

        SIGTERM or SIGUSR1 finishes the current step, writes a checkpoint and raises `Preempted`;
        Ctrl-C writes one and re-raises `KeyboardInterrupt`.
        """
        self.board = BoardWriter(self.run_dir)
        if self.start_step == 0:
            self._evaluate_baselines()
        loader = iter(batch_loader(self.data, self.start_step * self.accumulation_steps,
                                   self.steps * self.accumulation_steps))
        # disable=None: tqdm shows no bar when stderr is not a terminal
        bar = tqdm(range(self.start_step, self.steps), initial=self.start_step, total=self.steps,
                   desc="train", disable=None if self.progress else True,
                   dynamic_ncols=True)
        completed = self.start_step
        try:
            with preemption_watch() as preemption:
                for step in bar:
                    micro_batches = (next(loader) for _ in range(self.accumulation_steps))
                    scalars = self.train_step(step, micro_batches)
                    completed = step + 1
                    if step == self.start_step and on_first_step is not None:
                        on_first_step()
                    self._log(scalars, step, bar)
                    if preemption.requested:
                        checkpoint = self.save(completed)
                        log.warning("%s: saved step %d to %s; continue with --resume",
                                    preemption.received.name, completed, checkpoint)
                        raise Preempted(preemption.received.name, completed, checkpoint)
                    if completed % self.checkpoint_every == 0 and completed < self.steps:
                        self.save(completed)
                    if self.validate_every and completed % self.validate_every == 0 \
                            and completed < self.steps:
                        self._validate(completed)
        except KeyboardInterrupt:
            if completed > self.start_step:
                log.warning("interrupted: saving step %d; continue with --resume", completed)
                self.save(completed)
            raise
        finally:
            bar.close()
            self.board.writer.flush()
        self.save(self.steps)
        return self._final_evaluation()

    def _log(self, scalars: dict[str, float], step: int, bar) -> None:
        if step % self.log_every == 0 or step == self.steps - 1:
            self.board.scalars(scalars, step)
            bar.set_postfix(loss=f"{scalars['loss/total']:.4f}")
            log.info("step %d %s", step + 1, " ".join(f"{k}={v!r}" for k, v in scalars.items()))

    # -- evaluation --------------------------------------------------------------------------
    def _results(self, model: nn.Module | None) -> dict[str, dict[str, float]]:
        if model is None:
            return {}
        self.recipe.eval()
        return evaluate_sets(model, self.eval_sets, self.processing_res, str(self.device),
                             self.progress)

    def _recipe_scalars(self) -> dict[str, float]:
        self.recipe.eval()
        with torch.no_grad():
            return self.recipe.validation_scalars()

    def _evaluate_baselines(self) -> None:
        """The untrained model and the recipe's reference models (e.g. the teacher), once; the
        recipe's own validation numbers before training are logged at step 0."""
        scalars = self._recipe_scalars()
        if scalars:
            (self.run_dir / "baseline_validation.json").write_text(json.dumps(scalars, indent=2))
            self.board.scalars({f"val/{k}": v for k, v in scalars.items()}, 0)
        baselines = {"untrained": self._results(self.recipe.evaluated_model())}
        if self.evaluate_references:
            for name, reference in self.recipe.reference_models().items():
                baselines[name] = self._results(reference)
        (self.run_dir / "baseline_metrics.json").write_text(json.dumps(baselines, indent=2))

    def _validate(self, step: int) -> None:
        for eval_set, metrics in self._results(self.recipe.evaluated_model()).items():
            self.board.scalars({f"val/{eval_set}/{k}": v for k, v in metrics.items()}, step)
        self.board.scalars({f"val/{k}": v for k, v in self._recipe_scalars().items()}, step)

    def _final_evaluation(self) -> dict[str, dict[str, float]]:
        results = self._results(self.recipe.evaluated_model())
        (self.run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
        for eval_set, metrics in results.items():
            self.board.scalars({f"final/{eval_set}/{k}": v for k, v in metrics.items()},
                               self.steps)
        scalars = self._recipe_scalars()
        if scalars:
            (self.run_dir / "validation.json").write_text(json.dumps(scalars, indent=2))
            self.board.scalars({f"final/{k}": v for k, v in scalars.items()}, self.steps)
            before_file = self.run_dir / "baseline_validation.json"
            before = json.loads(before_file.read_text()) if before_file.exists() else {}
            print("\n".join(f"{k}: {v:.6g}" + (f" (untrained: {before[k]:.6g})" if k in before
                                                else "") for k, v in scalars.items()))
        self.board.close()
        baseline_file = self.run_dir / "baseline_metrics.json"
        baselines = json.loads(baseline_file.read_text()) if baseline_file.exists() else {}
        if results:
            table = format_comparison({"trained": results, **baselines})
            (self.run_dir / "metrics.md").write_text(table + "\n")
            print(table)
        return results
