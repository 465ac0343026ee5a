"""The definition reader (`local_runner.graph`): pipeline parameters cast to their types and checked."""

from __future__ import annotations

import pytest

from local_runner.graph import ExecutionError, cast_parameters


def test_parameters_are_cast_and_checked():
    """Overrides take the declared type; unknown names, bad values and values outside the enum are refused."""
    declared = [
        {"Name": "N", "Type": "Integer", "DefaultValue": 2},
        {"Name": "S", "Type": "String", "DefaultValue": "a", "EnumValues": ["a", "b"]},
        {"Name": "F", "Type": "Float", "DefaultValue": 1.0},
    ]
    assert cast_parameters(declared, {"N": "5", "F": "0.5"}) == {"N": 5, "S": "a", "F": 0.5}
    with pytest.raises(ExecutionError, match="unknown pipeline parameter"):
        cast_parameters(declared, {"M": 1})
    with pytest.raises(ExecutionError, match="N='x' is not a Integer"):
        cast_parameters(declared, {"N": "x"})
    with pytest.raises(ExecutionError, match="not one of"):
        cast_parameters(declared, {"S": "c"})
