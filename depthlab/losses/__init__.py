"""Losses, registered by name (see `registry`); importing the package registers the built-ins."""
from depthlab.losses import latent  # noqa: F401  (registers latent_mae, gradient_matching, ...)
from depthlab.losses import scale_shift  # noqa: F401  (registers ssi_mae, ssi_gradient_matching)
from depthlab.losses import alignment  # noqa: F401  (registers alignment_kl, alignment_cosine)
from depthlab.losses import pixel  # noqa: F401  (registers pixel_mse, four_direction_gradient, ...)
from depthlab.losses import affine_fit  # noqa: F401  (registers affine_invariant_l1, angular_...)
from depthlab.losses import metric  # noqa: F401  (registers silog)
from depthlab.losses import sds  # noqa: F401  (registers sds_x0, error_weighted_l1)
