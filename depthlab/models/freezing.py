"""Frozen modules: teachers, external encoders, the codec and frozen copies never train.

`freeze(module)` turns gradients off and marks the module. A recipe's default parameter groups
leave marked modules out, `Recipe.train()` keeps them in eval mode, and the trainer refuses an
optimizer that would receive any of their parameters - so freezing is enforced, not a convention.
Classes that are frozen by nature (`Teacher`, `LatentCodec`) set `frozen = True` instead.
"""
from __future__ import annotations

from torch import nn

FROZEN_ATTRIBUTE = "frozen"


def freeze(module: nn.Module) -> nn.Module:
    """Mark `module` frozen: no gradients, eval mode, excluded from every optimizer."""
    module.requires_grad_(False)
    module.eval()
    setattr(module, FROZEN_ATTRIBUTE, True)
    return module


def is_frozen(module: nn.Module) -> bool:
    return bool(getattr(module, FROZEN_ATTRIBUTE, False))


def frozen_parameter_owners(root: nn.Module) -> dict[int, str]:
    """{id(parameter): name of the frozen module holding it} for every parameter under a frozen
    module of `root` (a parameter shared with a trainable module still counts as frozen)."""
    owners: dict[int, str] = {}
    for name, module in root.named_modules(remove_duplicate=False):
        if is_frozen(module):
            for parameter in module.parameters():
                owners.setdefault(id(parameter), name or type(module).__name__)
    return owners
