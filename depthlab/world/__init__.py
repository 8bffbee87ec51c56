"""The mini world: procedural scenes, datasets, and pretrained stand-ins for the real models.

It is the built-in default data and models, so every recipe and ablation runs on a laptop CPU
with no downloads: `scenes` renders (RGB, planar depth) from a seed in a clean `synthetic` or a
`real` domain that differs in appearance and content, `datasets` wraps them as torch datasets,
and `mini_codec`, `mini_prior`, `mini_teacher` and `mini_metric_teacher` load the shipped
pretrained weights of the stand-ins for SD2's VAE, SD2's UNet, Depth Anything V2 and a metric
depth model (`shipped`, `regenerate`). `oracle`
serves only the ideal-teacher ablation (`lowpass_teacher`).
"""
