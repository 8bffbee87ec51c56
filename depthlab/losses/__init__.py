"""Losses, registered by name (see `registry`); importing the package registers the built-ins."""
from depthlab.losses import latent  # noqa: F401  (registers latent_mae, gradient_matching, ...)
from depthlab.losses import scale_shift  # noqa: F401  (registers ssi_mae, ssi_gradient_matching)
