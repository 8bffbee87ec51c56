"""OutputKind: complete per-kind tables, parsing errors and the properties of each kind."""
from __future__ import annotations

import pytest

from depthlab.errors import UserError
from depthlab.models import output_kind as output_kind_module
from depthlab.models.output_kind import KIND_TABLES, OutputKind
from depthlab.targets import Space

EXPECTED = {
    OutputKind.DEPTH: {"channels": 1, "near_is_low": True, "space": Space.DEPTH,
                       "alignment": "depth", "is_metric": False},
    OutputKind.DISPARITY: {"channels": 1, "near_is_low": False, "space": Space.DISPARITY,
                           "alignment": "disparity", "is_metric": False},
    OutputKind.SQRT_DISPARITY: {"channels": 1, "near_is_low": False, "space": Space.SQRT_DISPARITY,
                                "alignment": "sqrt_disparity", "is_metric": False},
    OutputKind.METRIC_DEPTH: {"channels": 1, "near_is_low": True, "space": Space.DEPTH,
                              "alignment": "none", "is_metric": True},
}


@pytest.mark.parametrize("index", range(len(KIND_TABLES)))
def test_every_table_covers_every_kind(index):
    assert set(KIND_TABLES[index]) == set(OutputKind)


def test_every_kind_keyed_table_is_listed_in_kind_tables():
    tables = [value for value in vars(output_kind_module).values()
              if isinstance(value, dict) and value
              and all(isinstance(k, OutputKind) for k in value)]
    assert len(tables) == len(KIND_TABLES) == 5
    assert all(any(table is listed for listed in KIND_TABLES) for table in tables)


def test_parse_accepts_members_and_values():
    assert OutputKind.parse("metric_depth") is OutputKind.METRIC_DEPTH
    assert OutputKind.parse(OutputKind.NORMALS) is OutputKind.NORMALS


def test_parse_names_the_binding_and_the_valid_kinds():
    with pytest.raises(UserError) as error:
        OutputKind.parse("nope", "X.output_kind")
    message = str(error.value)
    assert "'nope'" in message and "X.output_kind" in message
    for kind in OutputKind:
        assert kind.value in message


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_depth_like_kind_properties(kind):
    expected = EXPECTED[kind]
    assert kind.channels == expected["channels"]
    assert kind.near_is_low is expected["near_is_low"]
    assert kind.space is expected["space"]
    assert kind.alignment == expected["alignment"]
    assert kind.is_metric is expected["is_metric"]
    assert kind.is_depth_like is True
    assert kind.description


def test_normals_properties():
    normals = OutputKind.NORMALS
    assert normals.channels == 3
    assert normals.is_depth_like is False and normals.is_metric is False
    assert "normal" in normals.description
    for name in ("near_is_low", "alignment", "space"):
        with pytest.raises(UserError, match="normals"):
            getattr(normals, name)


@pytest.mark.parametrize("space, kind", [("depth", OutputKind.DEPTH),
                                         ("disparity", OutputKind.DISPARITY),
                                         (Space.SQRT_DISPARITY, OutputKind.SQRT_DISPARITY)])
def test_from_space(space, kind):
    assert OutputKind.from_space(space) is kind
    assert kind.space is Space(space)
