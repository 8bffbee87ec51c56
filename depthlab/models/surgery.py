"""Model surgery on a diffusers UNet without copying its code.

- `widen_conv_in`: more input channels (Marigold, E2E-FT: [RGB latent, depth latent]), the
  pretrained kernel repeated and divided by the repeat count.
- Patches, applied by `UNetBackbone` at construction: `InsertAfter` runs a new module on the output
  of a named module (DepthMaster's Fourier Enhancement after `mid_block`) through a forward hook;
  `ReplaceModule` swaps a named module, keeping the attributes diffusers checks on it. The new
  module becomes a child of the UNet, so it is trained, checkpointed and reloaded with the model.
- `capture_outputs`: the outputs of named modules during one forward (DepthMaster's mid-block
  features for Feature Alignment).

Hooks are module-level functions that find what they need through the hooked module, so a
`copy.deepcopy` of a patched UNet (an EMA copy, a frozen teacher copy) runs its own modules.
"""
from __future__ import annotations

import contextlib
import functools
import re
from typing import Callable, Iterator, Sequence

import gin
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from depthlab.errors import UserError


def widen_conv_in(unet: UNet2DConditionModel, in_channels: int, scale_bias: bool = False) -> None:
    """Give `unet.conv_in` `in_channels` inputs: the kernel repeated k = in / old times and divided
    by k, so an input that repeats the original k times gives the original output (Marigold).
    `scale_bias` also divides the bias by k (E2E-FT); Marigold and Lotus keep it."""
    old = unet.conv_in
    if in_channels == old.in_channels:
        return
    if in_channels < old.in_channels or in_channels % old.in_channels:
        raise UserError(f"Cannot widen the UNet's conv_in from {old.in_channels} to {in_channels} "
                        f"input channels: the new count must be a multiple of the old one "
                        f"(check the backbone's conv_in_channels binding).")
    repeats = in_channels // old.in_channels
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    old.dilation, old.groups, old.bias is not None, old.padding_mode,
                    device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.repeat(1, repeats, 1, 1) / repeats)
        if old.bias is not None:
            new.bias.copy_(old.bias / repeats if scale_bias else old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)


def output_channels(unet: UNet2DConditionModel, path: str) -> int:
    """Channels of the output of the UNet module at `path` (blocks and conv_in)."""
    widths = list(unet.config.block_out_channels)
    if path == "mid_block":
        return widths[-1]
    if path == "conv_in":
        return widths[0]
    match = re.fullmatch(r"(down|up)_blocks\.(\d+)", path)
    if match and int(match.group(2)) < len(widths):
        index = int(match.group(2))
        return widths[index] if match.group(1) == "down" else list(reversed(widths))[index]
    module = submodule(unet, path)
    if isinstance(getattr(module, "out_channels", None), int):
        return module.out_channels
    raise UserError(f"Cannot tell how many channels the UNet's '{path}' outputs; bind the "
                    f"patch's `channels` explicitly.")


def submodule(root: nn.Module, path: str) -> nn.Module:
    """`root.get_submodule(path)` with an error that lists the top-level names."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        names = ", ".join(name for name, _ in root.named_children())
        raise UserError(f"There is no module '{path}' in the {type(root).__name__} (its top-level "
                        f"modules: {names}).") from None


class BackbonePatch:
    """A change to a UNet at a named place, applied once when the backbone is built."""

    def apply(self, unet: UNet2DConditionModel) -> None:
        raise NotImplementedError


def _run_inserted(name: str, module: nn.Module, args, output):
    if not isinstance(output, torch.Tensor):
        raise UserError(f"InsertAfter '{name}' follows a {type(module).__name__}, which returns "
                        f"a {type(output).__name__}, not one tensor (diffusers' down blocks return "
                        f"their skip connections too); insert it after a module that returns a "
                        f"tensor, e.g. 'mid_block', 'up_blocks.N' or 'down_blocks.N.resnets.M'.")
    return getattr(module, name)(output)


@gin.configurable
class InsertAfter(BackbonePatch):
    """Run `module(channels=C)` on the output of the UNet module `at`, replacing that output.

    `module` is a gin reference to a module class or factory taking `channels` (for example
    `@ResidualAdapter`); C is inferred from the UNet for blocks and conv_in, or `channels`. The
    new module is stored as `<at>.<name>`, so its parameters are saved and loaded with the model.
    """

    def __init__(self, at: str = gin.REQUIRED, module: Callable[..., nn.Module] = gin.REQUIRED,
                 name: str = "inserted", channels: int | None = None):
        self.at, self.module, self.name, self.channels = at, module, name, channels

    def apply(self, unet: UNet2DConditionModel) -> None:
        target = submodule(unet, self.at)
        if hasattr(target, self.name):
            raise UserError(f"The UNet's '{self.at}' already has a '{self.name}'; give the "
                            f"InsertAfter patch another name.")
        channels = self.channels or output_channels(unet, self.at)
        target.add_module(self.name, self.module(channels=channels))
        target.register_forward_hook(functools.partial(_run_inserted, self.name))


# Attributes that diffusers' UNet forward reads from its blocks (`len(up_block.resnets)` too).
DIFFUSERS_BLOCK_ATTRIBUTES = ("has_cross_attention", "resnets")


@gin.configurable
class ReplaceModule(BackbonePatch):
    """Replace the UNet module `at` with `module(original)`; attributes diffusers reads from the
    original (`has_cross_attention`, ...) are copied over where the new module lacks them."""

    def __init__(self, at: str = gin.REQUIRED,
                 module: Callable[[nn.Module], nn.Module] = gin.REQUIRED,
                 keep_attributes: Sequence[str] = DIFFUSERS_BLOCK_ATTRIBUTES):
        self.at, self.module, self.keep_attributes = at, module, tuple(keep_attributes)

    def apply(self, unet: UNet2DConditionModel) -> None:
        original = submodule(unet, self.at)
        new = self.module(original)
        for attribute in self.keep_attributes:
            if hasattr(original, attribute) and not hasattr(new, attribute):
                # A plain reference, not a registered child: modules stay where they are.
                object.__setattr__(new, attribute, getattr(original, attribute))
        parent_path, _, child = self.at.rpartition(".")
        parent = submodule(unet, parent_path) if parent_path else unet
        parent.add_module(child, new)


def _store_output(store: dict, name: str, module: nn.Module, args, output) -> None:
    store[name] = output if isinstance(output, torch.Tensor) else output[0]


@contextlib.contextmanager
def capture_outputs(root: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, forward passes of `root` record the output of each module in `paths`
    (after any patch inserted after it; the hidden states of blocks that also return skip
    connections) into the yielded dict; the hooks are removed on exit."""
    store: dict[str, torch.Tensor] = {}
    handles = [submodule(root, path).register_forward_hook(
        functools.partial(_store_output, store, path)) for path in paths]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()
