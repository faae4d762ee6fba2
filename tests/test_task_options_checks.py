"""Every task's options are checked like EnvConfig's fields, at gym.make / config time.

For every registered task and every option field, a value of the wrong type (a number as a string, a
float where an int is needed, a bool as a word), NaN/inf and an empty text are refused with an
error that names the field; nothing waits for the run to trip over them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import gymnasium as gym
import pytest

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym.tasks import get_task, make_config, registered_tasks
from aees_gym.tasks.config import EnvConfig


def _bad_values(hint: Any) -> list[tuple[Any, type[Exception], str]]:
    """(value, error, what the message says) for a field of type ``hint``."""
    text = str(hint)
    if "bool" in text:
        return [("false", TypeError, "must be True or False"), (1, TypeError, "must be True or False")]
    if "int" in text:
        return [("3", TypeError, r"must be an integer, got the string '3' \(write the number without quotes\)"),
                (2.5, TypeError, "must be an integer, got 2.5"), (math.nan, TypeError, "must be an integer")]
    if "float" in text:
        return [("0.1", TypeError, "must be a number, got the string '0.1'"), (math.nan, ValueError, "must be a finite"),
                (math.inf, ValueError, "must be a finite"), (True, TypeError, "must be a number, got True")]
    if "str" in text and "tuple" not in text:
        return [(5, (TypeError, ValueError), "5")]  # type: ignore[list-item]
    return []


def _option_cases(task: str) -> list[tuple[str, Any, Any, str]]:
    cls = get_task(task).options_cls
    hints = typing.get_type_hints(cls)
    return [(f.name, value, error, message) for f in dataclasses.fields(cls) for value, error, message in _bad_values(hints[f.name])]


@pytest.mark.parametrize("task", registered_tasks())
def test_every_option_of_every_task_is_checked_when_the_config_is_made(task: str) -> None:
    cases = _option_cases(task)
    assert cases, f"{task} has no checked options"
    for name, value, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            make_config(task, **{name: value})
        assert name in str(caught.value), (task, name, value, str(caught.value))


@pytest.mark.parametrize("task", registered_tasks())
def test_gym_make_refuses_a_bad_option_before_any_run(task: str) -> None:
    name, value, error, message = _option_cases(task)[0]
    with pytest.raises(error, match=message):
        gym.make(f"aees_gym/{task}-v0", **{name: value})


@pytest.mark.parametrize("task", registered_tasks())
def test_env_settings_are_checked_for_every_task(task: str) -> None:
    for name, value, error in (("total_steps", "100", TypeError), ("base_lr", math.nan, ValueError), ("batch_size", 2.0, TypeError)):
        with pytest.raises(error, match=name):
            make_config(task, **{name: value})


@pytest.mark.parametrize(("overrides", "match"), [
    ({"n_embd": 30, "n_head": 4}, r"n_embd=30 must be divisible by n_head=4 .*change one of them"),
    ({"train_tokens": 10, "max_length": 64}, r"train_tokens=10 is less than one packed sequence of max_length=64 tokens; raise"),
    ({"dataset": "wiki"}, r"dataset='wiki' is not valid; choose one of"),
    ({"local_files_only": "no"}, r"local_files_only must be True or False, got 'no'"),
])
def test_gpt2_cross_field_rules(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        make_config("GPT2", **overrides)


def test_a_good_config_still_makes() -> None:
    config = make_config("GPT2", train_tokens=4096, max_length=32, n_embd=32, n_head=2)
    assert isinstance(config, EnvConfig) and config.options.train_tokens == 4096


@pytest.mark.parametrize(("task", "overrides", "option"), [
    ("Synthetic", {"n_train": 256, "batch_size": 512}, "n_train"),
    ("MNIST", {"n_train": 16, "batch_size": 32}, "n_train"),
    ("CIFAR10", {"n_train": 8, "batch_size": 64}, "n_train"),
    ("SST2", {"train_subset": 10, "batch_size": 32}, "train_subset"),
    ("GPT2", {"train_tokens": 4096, "max_length": 64, "batch_size": 65}, "train_tokens"),
])
def test_a_batch_larger_than_the_training_set_is_refused_at_make(task: str, overrides: dict[str, Any], option: str) -> None:
    match = rf"batch_size={overrides['batch_size']} exceeds the \d+ training examples that {option} allows; lower batch_size or raise {option}"
    with pytest.raises(ValueError, match=match):
        make_config(task, **overrides)
    with pytest.raises(ValueError, match=match):
        gym.make(f"aees_gym/{task}-v0", **overrides)
