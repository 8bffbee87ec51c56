"""Evaluation sets: a registry open to outside registration, and the built-in loaders.

`build_dataset(name, data_dir, split_file, **options)` builds any registered set; importing this
package registers nyu, kitti, eth3d, scannet, diode, folder, sintel, ibims and da2k.
"""
from depthlab.eval.datasets.registry import (EvalDataset, EvalSample, SampleError, build_dataset,
                                             dataset_names, register_dataset)
from depthlab.eval.datasets import (boundary_sets, da2k, folder, mini_world,  # noqa: F401
                                     protocol)  # importing registers the sets

__all__ = ["EvalDataset", "EvalSample", "SampleError", "build_dataset", "dataset_names",
           "register_dataset"]
