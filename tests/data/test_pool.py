"""`Pooled`: the first `size` items, each loaded once."""
import pytest

from depthlab.data.pool import Pooled
from depthlab.errors import UserError


class Counting:
    def __init__(self, length: int):
        self.length, self.loads = length, []

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        self.loads.append(index)
        return {"index": index}


def test_items_load_once_and_come_back_from_memory():
    source = Counting(10)
    pool = Pooled(source, 3)
    assert len(pool) == 3
    assert [pool[i]["index"] for i in (0, 1, 2, 0, -1)] == [0, 1, 2, 0, 2]
    assert source.loads == [0, 1, 2]


def test_out_of_range_index_raises_index_error():
    with pytest.raises(IndexError):
        Pooled(Counting(10), 3)[3]


@pytest.mark.parametrize("size", [0, 11])
def test_a_pool_must_fit_its_dataset(size):
    with pytest.raises(UserError, match="Pooled.size"):
        Pooled(Counting(10), size)
