"""The one training loop every recipe runs through.

It knows nothing about any method: the recipe returns the losses of a batch, the model predicts
for evaluation. The loop owns devices, precision, optimisation, logging, checkpoints and the final
evaluation.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Mapping

import gin
import torch
from tqdm import tqdm

from depthlab.data.mixing import MixedBatches, batch_loader
from depthlab.recipes.base import Recipe
from depthlab.train import checkpoint as ckpt
from depthlab.train.evaluation import (evaluate_sets, format_comparison, model_predict_fn,
                                       teacher_predict_fn)
from depthlab.train.optim import adamw, warmup_exponential_decay
from depthlab.train.tensorboard import BoardWriter

log = logging.getLogger("depthlab.train")


def pick_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu' or 'cuda' force one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def step_generator(seed: int, step: int, micro_step: int) -> torch.Generator:
    """Noise and timestep draws are a function of (seed, step), so a resumed run replays them."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 4099 + micro_step)


@gin.configurable
class Trainer:
    """Trains `recipe` on `data` for `steps` optimizer steps, writing everything to `run_dir`.

    `eval_sets` maps evaluation-set names (see `depthlab.eval.datasets`) to their data directory
    (None for built-in sets); they are evaluated at the end (and every `validate_every` steps
    when > 0). `mixed_precision='bf16'` applies only on CUDA; CPU runs are float32.
    """

    def __init__(self, run_dir: Path, recipe: Recipe = gin.REQUIRED,
                 data: MixedBatches = gin.REQUIRED, steps: int = gin.REQUIRED,
                 accumulation_steps: int = 1, clip_grad_norm: float | None = 1.0,
                 device: str = "auto", mixed_precision: str = "bf16",
                 gradient_checkpointing: bool = False, seed: int = 0, log_every: int = 10,
                 image_every: int = 100, checkpoint_every: int = 100, keep_checkpoints: int = 2,
                 eval_sets: Mapping[str, str | None] = gin.REQUIRED, validate_every: int = 0,
                 processing_res: int | None = None, evaluate_references: bool = True,
                 progress: bool = True):
        self.run_dir = Path(run_dir)
        self.device = pick_device(device)
        torch.manual_seed(seed)
        self.recipe = recipe.to(self.device)
        self.data, self.steps, self.seed = data, steps, seed
        self.accumulation_steps, self.clip_grad_norm = accumulation_steps, clip_grad_norm
        self.autocast_dtype = torch.bfloat16 if (mixed_precision == "bf16"
                                                 and self.device.type == "cuda") else None
        if gradient_checkpointing:
            self.recipe.model.backbone.enable_gradient_checkpointing()
        self.parameters = [p for p in self.recipe.parameters() if p.requires_grad]
        self.optimizer = adamw(self.parameters)
        self.scheduler = warmup_exponential_decay(self.optimizer, total_steps=steps)
        self.log_every, self.image_every = log_every, image_every
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.eval_sets, self.validate_every = dict(eval_sets), validate_every
        self.processing_res, self.evaluate_references = processing_res, evaluate_references
        self.progress = progress
        self.start_step = 0

    # -- state -------------------------------------------------------------------------------
    def resume_from(self, checkpoint: Path) -> None:
        """Restore weights, optimizer, schedule and RNG; training continues after its step."""
        from safetensors.torch import load_file

        ckpt.load_trainable_state(self.recipe, load_file(str(checkpoint / ckpt.WEIGHTS_FILE)),
                                  str(checkpoint))
        state = ckpt.load_training_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_state(state["rng"])
        self.start_step = state["step"]
        log.info("resumed from %s (step %d)", checkpoint, self.start_step)

    def save(self, step: int) -> Path:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        return ckpt.save_checkpoint(self.run_dir, step, self.recipe, state, self.keep_checkpoints)

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
            self.parameters, self.clip_grad_norm or float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        scalars = {f"loss/{k}": v for k, v in sums.items()}
        scalars.update({"train/learning_rate": self.scheduler.get_last_lr()[0],
                        "train/grad_norm": float(grad_norm),
                        "train/images_per_second": images / (time.perf_counter() - started)})
        return scalars

    def _write_panels(self, batch, panels: dict, step: int) -> None:
        rgb = {}
        if batch.labelled is not None:
            rgb["synthetic/rgb"] = batch.labelled.rgb
        if batch.unlabelled is not None:
            rgb["real/rgb"] = batch.unlabelled.rgb
        self.board.panels(rgb, panels, step)

    def run(self, on_first_step=None) -> dict[str, dict[str, float]]:
        """Train from `start_step` to `steps`, then evaluate; returns {eval_set: {metric: v}}."""
        self.board = BoardWriter(self.run_dir, self.recipe.model.space)
        if self.start_step == 0:
            self._evaluate_baselines()
        loader = iter(batch_loader(self.data, self.start_step * self.accumulation_steps,
                                   self.steps * self.accumulation_steps))
        bar = tqdm(range(self.start_step, self.steps), initial=self.start_step, total=self.steps,
                   desc="train", disable=not self.progress, dynamic_ncols=True)
        completed = self.start_step
        try:
            for step in bar:
                micro_batches = (next(loader) for _ in range(self.accumulation_steps))
                scalars = self.train_step(step, micro_batches)
                completed = step + 1
                if step == self.start_step and on_first_step is not None:
                    on_first_step()
                if step % self.log_every == 0 or step == self.steps - 1:
                    self.board.scalars(scalars, step)
                    bar.set_postfix(loss=f"{scalars['loss/total']:.4f}")
                    log.info("step %d %s", step + 1, " ".join(
                        f"{k}={v!r}" for k, v in scalars.items()))
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
        self.save(self.steps)
        return self._final_evaluation()

    # -- evaluation --------------------------------------------------------------------------
    def _model_results(self) -> dict[str, dict[str, float]]:
        self.recipe.eval()
        predict = model_predict_fn(self.recipe.model, self.processing_res)
        return evaluate_sets(predict, self.recipe.model.space, self.eval_sets, self.progress)

    def _evaluate_baselines(self) -> None:
        """The untrained model and the recipe's reference models (e.g. the teacher), once."""
        baselines = {"untrained": self._model_results()}
        if self.evaluate_references:
            for name, reference in self.recipe.reference_models().items():
                predict = teacher_predict_fn(reference, self.device)
                baselines[name] = evaluate_sets(predict, reference.output_space, self.eval_sets,
                                                self.progress)
        (self.run_dir / "baseline_metrics.json").write_text(json.dumps(baselines, indent=2))

    def _validate(self, step: int) -> None:
        for eval_set, metrics in self._model_results().items():
            self.board.scalars({f"val/{eval_set}/{k}": v for k, v in metrics.items()}, step)

    def _final_evaluation(self) -> dict[str, dict[str, float]]:
        results = self._model_results()
        (self.run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
        for eval_set, metrics in results.items():
            self.board.scalars({f"final/{eval_set}/{k}": v for k, v in metrics.items()},
                               self.steps)
        self.board.close()
        baseline_file = self.run_dir / "baseline_metrics.json"
        baselines = json.loads(baseline_file.read_text()) if baseline_file.exists() else {}
        table = format_comparison({"trained": results, **baselines})
        (self.run_dir / "metrics.md").write_text(table + "\n")
        print(table)
        return results
