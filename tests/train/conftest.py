"""The loop's tests build trainers directly: start each from an empty gin configuration."""
import gin
import pytest
import torch

torch.set_num_threads(1)  # tiny models: one thread is faster on a busy 2-core machine


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()
