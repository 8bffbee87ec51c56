"""Pretraining the mini world's codec: a small `AutoencoderKL` for RGB and normalised depth maps.

Stable Diffusion's VAE reconstructs depth maps well although it never saw one (Marigold's
observation); the mini world has no such VAE, so this recipe trains one on what the depth recipes
encode: RGB images of both domains and depth maps normalised the Marigold way, each in a target
space drawn per image (depth, disparity or square-root disparity), repeated to three channels. The
loss is L1 reconstruction of the posterior mean (the only thing a codec encodes), with depth
errors weighted as relative depth errors, plus a small KL term, on random crops (the VAE is
convolutional). Validation: the depth round trip's AbsRel on each domain's val split.
"""
from __future__ import annotations

import gin
import torch
from diffusers import AutoencoderKL

from depthlab.data.batch import Batch
from depthlab.errors import UserError
from depthlab.recipes.base import Panel, Recipe, StepOutput
from depthlab.targets import Space
from depthlab.world.datasets import MiniWorldDataset
from depthlab.world.mini_codec import SCALING_KEY, normalised_depth_maps, round_trip_abs_rel

SPACES = list(Space)


@gin.configurable
class CodecPretraining(Recipe):
    """Trains `vae` (e.g. `@small_vae()`) to reconstruct RGB and normalised depth.

    `crop`: side of the random square crop per step (0: whole images); `kl_weight`: weight of the
    posterior's KL term; `relative_weighting`: weight depth errors as relative depth errors;
    `val_length`: val scenes per domain for the round-trip AbsRel.
    """

    def __init__(self, vae: AutoencoderKL = gin.REQUIRED, crop: int = 32,
                 kl_weight: float = 1e-6, relative_weighting: bool = True,
                 val_length: int = 64, image_size: int = 64):
        super().__init__()
        self.vae = vae
        self.crop, self.kl_weight = int(crop), float(kl_weight)
        self.relative_weighting = relative_weighting
        self.val_sets = {domain: MiniWorldDataset(domain, "val", image_size, val_length)
                         for domain in ("synthetic", "real")}

    def evaluated_model(self) -> None:
        return None  # a codec predicts no depth; it reports through validation_scalars

    def enable_gradient_checkpointing(self) -> None:
        self.vae.enable_gradient_checkpointing()

    def _images(self, batch: Batch, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's images in [-1, 1] (depth maps, then RGB) and their loss weights."""
        labelled = batch.labelled
        if labelled is None:
            raise UserError("CodecPretraining needs labelled batches (RGB with depth): bind "
                            "MixedBatches.labelled to mini-world datasets.")
        picks = torch.randint(len(SPACES), (labelled.rgb.shape[0],), generator=generator)
        depth, weight = normalised_depth_maps(labelled.depth.float(), labelled.valid,
                                              [SPACES[int(i)] for i in picks])
        if not self.relative_weighting:
            weight = torch.ones_like(weight)
        rgb = labelled.rgb.float() * 2.0 - 1.0
        images = torch.cat([depth.expand(-1, 3, -1, -1), rgb])
        weights = torch.cat([weight, torch.ones_like(rgb[:, :1])])
        size = images.shape[-1]
        if 0 < self.crop < size:
            y, x = torch.randint(size - self.crop + 1, (2,), generator=generator).tolist()
            images = images[..., y:y + self.crop, x:x + self.crop]
            weights = weights[..., y:y + self.crop, x:x + self.crop]
        return images, weights

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        images, weights = self._images(batch, generator)
        posterior = self.vae.encode(images).latent_dist
        recon = self.vae.decode(posterior.mean).sample
        n_depth = batch.labelled.rgb.shape[0]
        error = weights * (recon - images).abs()
        terms = {"depth_l1": error[:n_depth].mean(), "rgb_l1": error[n_depth:].mean(),
                 "kl": posterior.kl().mean()}
        total = error.mean() + self.kl_weight * terms["kl"]
        panels = {}
        if with_panels:
            shown = slice(0, min(4, n_depth))
            panels = {"codec/depth_input": Panel((images[shown, :1] + 1) / 2),
                      "codec/depth_reconstruction": Panel((recon[shown].mean(1, keepdim=True)
                                                           .clamp(-1, 1) + 1) / 2),
                      "codec/rgb_reconstruction": Panel((recon[n_depth:n_depth + 4]
                                                         .clamp(-1, 1) + 1) / 2)}
        return StepOutput(total, terms, panels)

    # -- the latent scale and validation -------------------------------------------------------
    def latent_scale(self) -> float:
        """1 / std of the posterior means of held-out RGB and depth (SD's `scaling_factor`)."""
        items = [data[i] for data in self.val_sets.values() for i in range(min(16, len(data)))]
        rgb = torch.stack([item["rgb"] for item in items]) * 2.0 - 1.0
        depth, _ = normalised_depth_maps(torch.stack([item["depth"] for item in items]),
                                         torch.stack([item["valid"] for item in items]),
                                         [SPACES[i % len(SPACES)] for i in range(len(items))])
        device = next(self.vae.parameters()).device
        was_training = self.vae.training
        self.vae.eval()
        with torch.no_grad():
            sample = torch.cat([rgb, depth.expand(-1, 3, -1, -1)]).to(device)
            std = self.vae.encode(sample).latent_dist.mean.std().item()
        self.vae.train(was_training)
        return 1.0 / std

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {f"vae.{SCALING_KEY}": torch.tensor(self.latent_scale(), dtype=torch.float32)}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        pass  # the scale is recomputed from the weights whenever it is saved

    def validation_scalars(self) -> dict[str, float]:
        device = next(self.vae.parameters()).device

        def encode(x: torch.Tensor) -> torch.Tensor:
            return self.vae.encode(x.to(device).expand(-1, 3, -1, -1)).latent_dist.mean

        def decode(z: torch.Tensor) -> torch.Tensor:
            return self.vae.decode(z).sample.mean(dim=1, keepdim=True).cpu()

        return {f"codec/round_trip_abs_rel/{domain}": round_trip_abs_rel(encode, decode, data)
                for domain, data in self.val_sets.items()}
