"""depthlab: a modular sandbox for monocular depth estimation with diffusion priors."""

__version__ = "0.1.0"
