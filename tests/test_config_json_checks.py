"""Config JSON round trips refuse non-objects and wrong types with a clear error, never a bare TypeError from dict()."""

from __future__ import annotations

import json
from typing import Any

import pytest

import aees_gym  # noqa: F401  (registers the tasks)
from aees_gym.core.fileio import FileCheckError
from aees_gym.tasks import make_config
from aees_gym.tasks.config import EnvConfig


@pytest.mark.parametrize(("text", "error", "match"), [
    ("[1, 2]", TypeError, r"an EnvConfig must be read from a mapping \(a JSON object\) of its fields, got list .*EnvConfig\.to_json"),
    ("5", TypeError, r"must be read from a mapping .* got int 5"),
    ("null", TypeError, r"got NoneType"),
    ('"Digits"', TypeError, r"got str"),
    ("{not json", FileCheckError, r"EnvConfig JSON: not readable as JSON"),
    ('{"base_lr": NaN}', FileCheckError, r"NaN is not valid in strict JSON"),
    ("[" * 10_000 + "]" * 10_000, FileCheckError, r"nests JSON deeper than 64 levels"),
])
def test_from_json_refuses_what_is_not_a_config_object(text: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        EnvConfig.from_json(text)


def _with(**change: Any) -> str:
    data = json.loads(make_config("Digits").to_json())
    data.update(change)
    return json.dumps(data)


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"options": 5}, TypeError, r"options of task 'Digits' must be a mapping \(a JSON object\) with keys \['hidden', 'split_seed', 'val_fraction'\], got int 5"),
    ({"options": {"hidden": "128"}}, TypeError, r"hidden must be an integer, got the string '128'"),
    ({"reward": [1]}, TypeError, r"reward must be a RewardConfig or a mapping, got list"),
    ({"context": "all"}, TypeError, r"context must be a ContextConfig or a mapping, got str"),
    ({"grid": 3}, TypeError, r"grid must be a CandidateGrid or a mapping, got int"),
    ({"grid": {"lr_multipliers": 2.0}}, TypeError, r"grid lr_multipliers must be a list of numbers, got float 2\.0; write e\.g\."),
    ({"grid": {"lr_multipliers": "0.5"}}, TypeError, r"grid lr_multipliers must be a list of numbers, got str"),
    ({"relative_lr_bounds": 5}, TypeError, r"relative_lr_bounds must be a pair \(low, high\), got 5"),
    ({"total_steps": "1000"}, TypeError, r"total_steps must be an integer, got the string '1000'"),
    ({"task": 7}, TypeError, r"task must be a string"),
])
def test_from_json_checks_every_nested_value(change: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        EnvConfig.from_json(_with(**change))


def test_the_round_trip_still_holds() -> None:
    config = make_config("Digits", base_lr=3e-3)
    assert EnvConfig.from_json(config.to_json()) == config
    with pytest.raises(TypeError, match=r"from_json takes the JSON text \(str\), got dict; for a dict use EnvConfig\.from_dict"):
        EnvConfig.from_json({"task": "Digits"})  # type: ignore[arg-type]
