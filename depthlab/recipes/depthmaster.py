"""DepthMaster: one UNet pass at t = 1 predicting the sqrt-disparity latent directly.

As in docs/methods.md (DepthMaster), one recipe serves both stages; a stage is a set of weights.
  Stage 1: latent MSE + Feature Alignment of the UNet's mid-block features to a frozen external
    encoder's patch tokens (`depthlab.heads.feature_alignment`).
  Stage 2 (starts from a stage 1 run, `experiments/depthmaster_stage2.gin`): pixel MSE of the
    prediction decoded through the frozen decoder plus 1e-3 x the four-direction gradient loss,
    with the Fourier Enhancement block patched in after the mid block
    (`depthlab.heads.fourier_enhancement`, a backbone patch).
Each term is on when its weight is positive, so an ablation is a binding.
"""
from __future__ import annotations

from typing import Callable

import gin
import torch

from depthlab.data.batch import Batch, LabelledBatch
from depthlab.encoders.base import FeatureEncoder
from depthlab.errors import UserError
from depthlab.heads.feature_alignment import FeatureAlignment
from depthlab.losses.registry import get_loss
from depthlab.models.depth_model import DepthModel
from depthlab.models.modes import DirectLatentMode
from depthlab.models.output_kind import OutputKind
from depthlab.models.surgery import output_channels
from depthlab.recipes.base import Panel, Recipe, StepOutput
from depthlab.targets import TargetEncoder, latent_valid_mask


@gin.configurable
class DepthMaster(Recipe):
    """The DepthMaster training recipe; the timestep is the inference mode's (t = 1).

    `alignment` is an uncalled `@FeatureAlignment` reference, sized here from the width of the
    UNet module `feature_module` and of `encoder`'s tokens; it needs `encoder`, a frozen
    `FeatureEncoder` built once per process. Weights: `latent_weight` (latent MSE, masked by
    depth validity), `alignment_weight`, `pixel_weight` (pixel loss of the decoded prediction
    against the normalised GT on valid pixels) and `gradient_weight` (gradient loss of the same);
    a term with weight 0 is not computed.
    """

    def __init__(self, model: DepthModel = gin.REQUIRED, target: TargetEncoder | None = None,
                 latent_loss: str = "latent_mse", latent_weight: float = 1.0,
                 encoder: FeatureEncoder | None = None,
                 alignment: Callable[..., FeatureAlignment] | None = None,
                 alignment_weight: float = 1.0, feature_module: str = "mid_block",
                 pixel_loss: str = "pixel_mse", pixel_weight: float = 0.0,
                 gradient_loss: str = "four_direction_gradient", gradient_weight: float = 0.0):
        super().__init__()
        if not isinstance(model.mode, DirectLatentMode):
            raise UserError(f"DepthMaster trains the direct one-pass prediction of "
                            f"DirectLatentMode, but the model's mode is "
                            f"{type(model.mode).__name__}; include gin/inference/depthmaster.gin.")
        self.model = model
        self.target = target or TargetEncoder()
        self.timestep = model.mode.timestep
        self.weights = {"latent": latent_weight, "alignment": alignment_weight,
                        "pixel": pixel_weight, "gradient": gradient_weight}
        self.latent_loss, self.pixel_loss = get_loss(latent_loss), get_loss(pixel_loss)
        self.gradient_loss = get_loss(gradient_loss)
        self.feature_module = feature_module
        self.encoder = encoder
        self.alignment = None
        if alignment is not None and alignment_weight > 0:
            if encoder is None:
                raise UserError("DepthMaster.alignment (Feature Alignment) needs an external "
                                "encoder to align to: bind DepthMaster.encoder (e.g. "
                                "@dinov2_encoder() or @mini_teacher_encoder()).")
            self.alignment = alignment(
                unet_channels=output_channels(model.backbone.unet, feature_module),
                encoder_channels=encoder.channels)
        if not any(self.weights[name] > 0 for name in ("latent", "pixel", "gradient")) \
                and self.alignment is None:
            raise UserError("DepthMaster has no loss term with a positive weight; set "
                            "latent_weight (stage 1) or pixel_weight (stage 2).")
        self.uses_pixel_losses = pixel_weight > 0 or gradient_weight > 0
        self.check_target_space(self.target.space)

    def losses(self, batch: Batch, generator: torch.Generator,
               with_panels: bool = False) -> StepOutput:
        data = self.labelled_only(batch)
        inputs = self._inputs(data)
        features = [self.feature_module] if self.alignment is not None else []
        output = self.model.backbone.forward_with_features(inputs["x0"], self.timestep, features)
        prediction = output.sample.float()
        terms: dict[str, torch.Tensor] = {}
        if self.weights["latent"] > 0:
            terms["latent"] = self.latent_loss(prediction, inputs["label"], inputs["mask"])
        if self.alignment is not None:
            tokens = self.encoder(data.rgb)
            terms["alignment"] = self.alignment(
                output.features[self.feature_module].float(), tokens.float())
        if self.uses_pixel_losses:
            decoded = self.model.codec.decode_depth(prediction).float()
            if self.weights["pixel"] > 0:
                terms["pixel"] = self.pixel_loss(decoded, inputs["pixels"], data.valid)
            if self.weights["gradient"] > 0:
                terms["gradient"] = self.gradient_loss(decoded, inputs["pixels"], data.valid)
        total = sum(self.weights[name] * value for name, value in terms.items())
        panels = self._panels(prediction, inputs) if with_panels else {}
        return StepOutput(total=total, terms=terms, panels=panels)

    def _inputs(self, data: LabelledBatch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            pixels = self.target.from_depth(data.depth, data.valid)
            return {"x0": self.model.encode_rgb(data.rgb), "pixels": pixels,
                    "label": self.model.codec.encode_depth(pixels),
                    "mask": latent_valid_mask(data.valid, self.model.codec.downsample_factor)}

    def _panels(self, prediction: torch.Tensor, inputs: dict) -> dict[str, Panel]:
        kind = OutputKind.from_space(self.target.space)
        with torch.no_grad():
            return {"synthetic/prediction": Panel(self.model.latent_to_unit(prediction), kind),
                    "synthetic/label": Panel((inputs["pixels"] + 1.0) / 2.0, kind)}
