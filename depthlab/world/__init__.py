"""The mini world: procedural scenes, datasets, a depth oracle and a cached mini codec.

It is the built-in default data so the main training job runs on a laptop CPU with no downloads:
`scenes` renders (RGB, planar depth) from a seed in a clean `synthetic` or a shifted `real`
domain, `datasets` wraps them as torch datasets, `oracle` remembers the depth behind each rendered
image for the low-pass teacher, and `codec_pretrain` trains and caches a small VAE.
"""
