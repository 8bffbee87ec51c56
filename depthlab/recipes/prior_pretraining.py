"""Pretraining the mini world's generative prior: the mini UNet as a latent diffusion model.

Stable Diffusion 2 learned to denoise latents of the internet's images; the depth recipes start
from that UNet and (FiffDepth's trajectory term) try to keep its generative behaviour. The mini
world's stand-in is trained here the same way: DDPM with v-prediction on the codec's RGB latents
of both domains, conditioned on the backbone's fixed empty-prompt embedding, the conditioning the
depth recipes use. Validation: the held-out denoising loss (fixed images, noise and timesteps),
which the loop also logs before training, i.e. for the untrained UNet. TensorBoard panels show
samples drawn with a DDIM sampler.
"""
from __future__ import annotations

import gin
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from depthlab.data.batch import Batch
from depthlab.errors import UserError
from depthlab.models.backbone import UNetBackbone
from depthlab.models.codec import LatentCodec
from depthlab.recipes.base import Panel, Recipe, StepOutput
from depthlab.world.datasets import MiniWorldDataset


@gin.configurable
class PriorPretraining(Recipe):
    """Trains `backbone` to predict v on noised RGB latents of `codec`.

    `val_length`: held-out val scenes per domain; `val_timesteps`: timesteps each held-out latent
    is noised at (evenly spread over the schedule); `sample_steps`: DDIM steps of the panels.
    """

    def __init__(self, backbone: UNetBackbone = gin.REQUIRED, codec: LatentCodec = gin.REQUIRED,
                 schedule: DDPMScheduler = gin.REQUIRED, val_length: int = 32,
                 val_timesteps: int = 8, sample_steps: int = 20, image_size: int = 64):
        super().__init__()
        if schedule.config.prediction_type != "v_prediction":
            raise UserError("PriorPretraining trains a v-prediction model, as SD2 is; bind "
                            "ddpm_schedule.prediction_type = 'v_prediction'.")
        self.backbone, self.codec, self.schedule = backbone, codec, schedule
        self.sample_steps = int(sample_steps)
        alphas = schedule.alphas_cumprod.to(torch.float64)
        self.register_buffer("alphas_cumprod", alphas.float(), persistent=False)
        self.val_images = torch.stack(
            [MiniWorldDataset(domain, "val", image_size, val_length)[i]["rgb"]
             for domain in ("synthetic", "real") for i in range(val_length)])
        count = schedule.config.num_train_timesteps
        self.val_timesteps = torch.linspace(0, count - 1, int(val_timesteps) + 2)[1:-1].round()

    def evaluated_model(self) -> None:
        return None  # a prior predicts no depth; it reports through validation_scalars

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.enable_gradient_checkpointing()

    def _noised(self, latent: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The noisy latent and the v target, computed in float32."""
        abar = self.alphas_cumprod[timesteps.long()].view(-1, 1, 1, 1)
        a, s = abar.sqrt(), (1.0 - abar).sqrt()
        return a * latent + s * noise, a * noise - s * latent

    def denoising_loss(self, latent: torch.Tensor, noise: torch.Tensor,
                       timesteps: torch.Tensor) -> torch.Tensor:
        noisy, target = self._noised(latent.float(), noise.float(), timesteps)
        prediction = self.backbone(noisy, timesteps.float())
        return (prediction.float() - target).pow(2).mean()

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        part = batch.labelled or batch.unlabelled
        if part is None:
            raise UserError("PriorPretraining got an empty batch: bind MixedBatches to RGB data.")
        rgb = torch.cat([p.rgb for p in (batch.labelled, batch.unlabelled) if p is not None])
        with torch.no_grad():
            latent = self.codec.encode_image(rgb.float() * 2.0 - 1.0)
        count = self.schedule.config.num_train_timesteps
        timesteps = torch.randint(count, (latent.shape[0],), generator=generator)
        noise = torch.randn(latent.shape, generator=generator).to(latent.device)
        loss = self.denoising_loss(latent, noise, timesteps.to(latent.device))
        panels = {"prior/samples": Panel(self.sample(4, latent.shape[1:], generator))} \
            if with_panels else {}
        return StepOutput(loss, {"v_mse": loss}, panels)

    @torch.no_grad()
    def sample(self, count: int, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        """`count` images in [0, 1] drawn with DDIM from pure noise (for TensorBoard)."""
        sampler = DDIMScheduler.from_config(self.schedule.config)
        sampler.set_timesteps(self.sample_steps)
        device = self.alphas_cumprod.device
        latent = torch.randn((count, *shape), generator=generator).to(device)
        for t in sampler.timesteps:
            v = self.backbone(latent, t.float().to(device))
            latent = sampler.step(v, t, latent).prev_sample
        image = self.codec.vae.decode(latent / self.codec.scaling_factor).sample
        return ((image.clamp(-1, 1) + 1) / 2).float()

    @torch.no_grad()
    def validation_scalars(self) -> dict[str, float]:
        """Held-out v-prediction MSE, each latent at every validation timestep (fixed noise)."""
        device = self.alphas_cumprod.device
        generator = torch.Generator().manual_seed(0)
        latent = self.codec.encode_image(self.val_images.to(device) * 2.0 - 1.0)
        losses = []
        for t in self.val_timesteps:
            noise = torch.randn(latent.shape, generator=generator).to(device)
            steps = torch.full((latent.shape[0],), int(t), device=device)
            losses.append(float(self.denoising_loss(latent, noise, steps)))
        return {"prior/heldout_v_mse": sum(losses) / len(losses)}
