"""Every config checks its values when it is built, with an error that names the field and its range."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aees_gym.cli import parse_assignment
from aees_gym.core.config import ContextConfig, ControlConfig, RewardConfig
from aees_gym.core.grid import CandidateGrid
from aees_gym.suite.suite_file import SuiteConfigError, parse_suite
from aees_gym.tasks import make_config
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.tabular import DigitsOptions, SyntheticOptions
from aees_gym.tasks.text import SST2Options
from aees_gym.tasks.vision import CifarOptions, MnistOptions

NAN, INF = math.nan, math.inf

# (config class, bad field values, expected error, text the message must contain: the field's name)
BAD = [
    # RewardConfig: unknown reward, string numbers, NaN/inf, out-of-interval ratio, zero/negative, bad types
    (RewardConfig, {"name": "nope"}, KeyError, "reward.name"),
    (RewardConfig, {"name": 3}, TypeError, "reward.name"),
    (RewardConfig, {"ema_alpha": "0.1"}, TypeError, "reward.ema_alpha"),
    (RewardConfig, {"ema_alpha": 0.0}, ValueError, "reward.ema_alpha must be a finite number in (0, 1]"),
    (RewardConfig, {"ema_alpha": 1.5}, ValueError, "reward.ema_alpha"),
    (RewardConfig, {"ema_alpha": NAN}, ValueError, "reward.ema_alpha"),
    (RewardConfig, {"epsilon": 0.0}, ValueError, "reward.epsilon must be a finite positive number"),
    (RewardConfig, {"epsilon": INF}, ValueError, "reward.epsilon"),
    (RewardConfig, {"instability_lambda": -1.0}, ValueError, "reward.instability_lambda"),
    (RewardConfig, {"clip_min": -INF}, ValueError, "reward.clip_min"),
    (RewardConfig, {"clip_max": "1"}, TypeError, "reward.clip_max"),
    (RewardConfig, {"clip_min": 1.0, "clip_max": 0.0}, ValueError, "reward.clip_min must be <= reward.clip_max"),
    (RewardConfig, {"smoothing_steps": 0}, ValueError, "reward.smoothing_steps"),
    (RewardConfig, {"smoothing_steps": 2.5}, TypeError, "reward.smoothing_steps must be an integer"),
    (RewardConfig, {"divergence_reward": NAN}, ValueError, "reward.divergence_reward"),
    # ContextConfig
    (ContextConfig, {"trend_window": 0}, ValueError, "context.trend_window"),
    (ContextConfig, {"trend_window": "3"}, TypeError, "context.trend_window"),
    (ContextConfig, {"trend_epsilon": -1e-3}, ValueError, "context.trend_epsilon"),
    (ContextConfig, {"trend_epsilon": NAN}, ValueError, "context.trend_epsilon"),
    (ContextConfig, {"features": ()}, ValueError, "context.features"),
    (ContextConfig, {"features": "progress"}, TypeError, "context.features"),
    (ContextConfig, {"features": ("progress", "nope")}, ValueError, "context.features"),
    # ControlConfig (the fields EnvConfig shares)
    (ControlConfig, {"total_steps": 0}, ValueError, "total_steps must be a positive integer in [1, inf)"),
    (ControlConfig, {"total_steps": "100"}, TypeError, "total_steps"),
    (ControlConfig, {"total_steps": 100.0}, TypeError, "total_steps"),
    (ControlConfig, {"total_steps": True}, TypeError, "total_steps"),
    (ControlConfig, {"window_length": -5}, ValueError, "window_length"),
    (ControlConfig, {"action_mode": "absolute"}, ValueError, "action_mode"),
    (ControlConfig, {"relative_lr_bounds": (0.0, 10.0)}, ValueError, "relative_lr_bounds[0] (low)"),
    (ControlConfig, {"relative_lr_bounds": (0.1, 0.5)}, ValueError, "relative_lr_bounds[1] (high)"),
    (ControlConfig, {"relative_lr_bounds": (0.1, INF)}, ValueError, "relative_lr_bounds[1] (high)"),
    (ControlConfig, {"relative_lr_bounds": 5.0}, TypeError, "relative_lr_bounds"),
    (ControlConfig, {"divergence_loss_ratio": 0.5}, ValueError, "divergence_loss_ratio must be a finite number in (1, inf)"),
    (ControlConfig, {"divergence_loss_ratio": NAN}, ValueError, "divergence_loss_ratio"),
    (ControlConfig, {"base_lr": 0.0}, ValueError, "base_lr"),
    (ControlConfig, {"label_noise": 1.0}, ValueError, "label_noise must be a finite fraction in [0, 1)"),
    (ControlConfig, {"reward": 3}, TypeError, "reward"),
    # CandidateGrid
    (CandidateGrid, {"lr_multipliers": ("0.5", 1.0)}, TypeError, "grid.lr_multipliers[0]"),
    (CandidateGrid, {"lr_multipliers": (1.0, 0.0)}, ValueError, "grid.lr_multipliers[1]"),
    (CandidateGrid, {"lr_multipliers": (INF,)}, ValueError, "grid.lr_multipliers[0]"),
    (CandidateGrid, {"lr_multipliers": "1.0"}, TypeError, "grid.lr_multipliers"),
    (CandidateGrid, {"noise_stds": (-0.1,)}, ValueError, "grid.noise_stds[0]"),
    (CandidateGrid, {"noise_stds": (NAN,)}, ValueError, "grid.noise_stds[0]"),
    # EnvConfig
    (EnvConfig, {"base_lr": "1e-3"}, TypeError, "base_lr"),
    (EnvConfig, {"base_lr": -1e-3}, ValueError, "base_lr"),
    (EnvConfig, {"base_lr": INF}, ValueError, "base_lr"),
    (EnvConfig, {"batch_size": 0}, ValueError, "batch_size"),
    (EnvConfig, {"batch_size": "64"}, TypeError, "batch_size"),
    (EnvConfig, {"weight_decay": -0.1}, ValueError, "weight_decay"),
    (EnvConfig, {"weight_decay": NAN}, ValueError, "weight_decay"),
    (EnvConfig, {"momentum": 1.0}, ValueError, "momentum must be a finite fraction in [0, 1)"),
    (EnvConfig, {"momentum": -0.5}, ValueError, "momentum"),
    (EnvConfig, {"warmup_fraction": 1.0}, ValueError, "warmup_fraction"),
    (EnvConfig, {"step_every_fraction": 0.0}, ValueError, "step_every_fraction must be a finite fraction in (0, 1]"),
    (EnvConfig, {"decay_gamma": 0.0}, ValueError, "decay_gamma"),
    (EnvConfig, {"decay_gamma": 2.0}, ValueError, "decay_gamma"),
    (EnvConfig, {"label_noise": -0.1}, ValueError, "label_noise"),
    (EnvConfig, {"label_noise": "0.2"}, TypeError, "label_noise"),
    (EnvConfig, {"eval_every": -1}, ValueError, "eval_every"),
    (EnvConfig, {"target_accuracy": 1.5}, ValueError, "target_accuracy"),
    (EnvConfig, {"target_accuracy": NAN}, ValueError, "target_accuracy"),
    (EnvConfig, {"optimizer": "lamb"}, ValueError, "optimizer"),
    (EnvConfig, {"schedule": 1}, ValueError, "schedule"),
    (EnvConfig, {"device": "tpu"}, ValueError, "device"),
    (EnvConfig, {"reward": {"name": "nope"}}, KeyError, "reward.name"),
    (EnvConfig, {"reward": {"ema_alpha": "0.1"}}, TypeError, "reward.ema_alpha"),
    (EnvConfig, {"grid": {"noise_stds": [INF]}}, ValueError, "grid.noise_stds[0]"),
    # task options
    (DigitsOptions, {"hidden": 0}, ValueError, "hidden"),
    (DigitsOptions, {"val_fraction": 0.0}, ValueError, "val_fraction"),
    (DigitsOptions, {"val_fraction": "0.2"}, TypeError, "val_fraction"),
    (DigitsOptions, {"split_seed": -1}, ValueError, "split_seed"),
    (SyntheticOptions, {"n_train": "2048"}, TypeError, "n_train"),
    (SyntheticOptions, {"n_classes": 1}, ValueError, "n_classes"),
    (SyntheticOptions, {"separation": 0.0}, ValueError, "separation"),
    (SyntheticOptions, {"separation": NAN}, ValueError, "separation"),
    (CifarOptions, {"n_train": 0}, ValueError, "n_train"),
    (CifarOptions, {"augment": "false"}, TypeError, "augment"),
    (CifarOptions, {"download": 1}, TypeError, "download"),
    (CifarOptions, {"autocast": "yes"}, TypeError, "autocast"),
    (CifarOptions, {"data_dir": 3}, TypeError, "data_dir"),
    (MnistOptions, {"val_fraction": 1.0}, ValueError, "val_fraction"),
    (MnistOptions, {"source": "web"}, ValueError, "source"),
    (SST2Options, {"max_length": 1}, ValueError, "max_length"),
    (SST2Options, {"max_length": "128"}, TypeError, "max_length"),
    (SST2Options, {"dropout": 1.0}, ValueError, "dropout"),
    (SST2Options, {"dropout": NAN}, ValueError, "dropout"),
    (SST2Options, {"vocab_size": 2}, ValueError, "vocab_size"),
    (SST2Options, {"val_fraction": INF}, ValueError, "val_fraction"),
    (SST2Options, {"eval_batch_size": 0}, ValueError, "eval_batch_size"),
    (SST2Options, {"train_subset": 0}, ValueError, "train_subset"),
    (SST2Options, {"local_files_only": "true"}, TypeError, "local_files_only"),
    (SST2Options, {"label_names": "neg,pos"}, TypeError, "label_names"),
]


@pytest.mark.parametrize(
    "cls, values, error, field", BAD, ids=[f"{c.__name__}-{'-'.join(v)}-{v[next(iter(v))]!r}" for c, v, _, _ in BAD]
)
def test_bad_values_fail_when_the_config_is_built(cls, values, error, field):
    with pytest.raises(error) as info:
        cls(**values)
    assert field in str(info.value)


def test_messages_name_the_valid_range_and_say_strings_are_not_numbers():
    with pytest.raises(TypeError, match=r"base_lr must be a number, got the string '1e-3' \(write the number without quotes\)"):
        EnvConfig(base_lr="1e-3")
    with pytest.raises(ValueError, match=r"reward.ema_alpha must be a finite number in \(0, 1\], got nan"):
        RewardConfig(ema_alpha=NAN)


def test_make_config_rejects_bad_overrides_of_env_and_task_fields():
    with pytest.raises(TypeError, match="base_lr"):
        make_config("Digits", base_lr="3e-3")
    with pytest.raises(ValueError, match="hidden"):
        make_config("Digits", hidden=-4)
    with pytest.raises(KeyError, match="reward.name='nope'"):
        make_config("Digits", reward={"name": "nope"})


def test_cli_set_values_are_parsed_as_toml_so_numbers_arrive_as_numbers():
    config = make_config("Digits", **dict(parse_assignment(a) for a in ("base_lr=3e-3", "total_steps=40", "momentum=0.5")))
    assert (config.base_lr, config.total_steps, config.momentum) == (3e-3, 40, 0.5)
    key, value = parse_assignment("base_lr=fast")  # not TOML: stays a word and is then rejected
    with pytest.raises(TypeError, match="base_lr must be a number, got the string 'fast'"):
        make_config("Digits", **{key: value})


def test_numpy_scalars_and_paths_are_accepted_and_normalised():
    config = EnvConfig(base_lr=np.float32(0.5), total_steps=np.int64(100), label_noise=np.float64(0.2))
    assert type(config.base_lr) is float and config.base_lr == 0.5
    assert type(config.total_steps) is int and config.total_steps == 100
    assert config.to_json()  # still JSON-ready
    assert CifarOptions(data_dir=Path("/tmp/x"), model="resnet8").data_dir == "/tmp/x"
    assert CifarOptions(autocast=np.bool_(True), model="resnet8").autocast is True


def test_valid_edges_are_accepted():
    RewardConfig(ema_alpha=1.0, clip_min=0.5, clip_max=0.5, divergence_reward=-2.0)
    ControlConfig(relative_lr_bounds=(1.0, 1.0), divergence_loss_ratio=None, label_noise=0.0)
    EnvConfig(momentum=0.0, step_every_fraction=1.0, decay_gamma=1.0, target_accuracy=1.0, eval_every=0)
    SST2Options(dropout=0.0, train_subset=None)


SUITE = {
    "name": "v",
    "seeds": [0],
    "tasks": [{"name": "Synthetic"}],
    "agents": [{"name": "fixed", "kwargs": {"lr_multiplier": 1.0, "noise_std": 0.0}}],
}


@pytest.mark.parametrize(
    "changes, where",
    [
        ({"workers": "2"}, "workers"),
        ({"workers": 0}, "workers"),
        ({"seeds": [-1]}, "seeds[0]"),
        ({"seeds": [1.5]}, "seeds[0]"),
        ({"sweeps": {"base_lr_multipliers": [1, "3"]}}, "sweeps.base_lr_multipliers[1]"),
        ({"sweeps": {"base_lr_multipliers": [NAN]}}, "sweeps.base_lr_multipliers[0]"),
        ({"sweeps": {"base_lr_multipliers": [INF]}}, "sweeps.base_lr_multipliers[0]"),
        ({"sweeps": {"base_lr_multipliers": [0]}}, "sweeps.base_lr_multipliers[0]"),
        ({"env": {"base_lr": "1e-3"}}, "base_lr"),
        ({"env": {"total_steps": NAN}}, "total_steps"),
        ({"env": {"reward": {"name": "nope"}}}, "reward.name"),
        ({"sweeps": {"label_noise": [0.0, 1.5]}}, "label_noise"),
    ],
)
def test_suite_values_are_checked_with_the_key_in_the_message(changes, where):
    with pytest.raises(SuiteConfigError) as info:
        parse_suite({**SUITE, **changes}, "suite.toml")
    assert where in str(info.value) and "suite.toml" in str(info.value)
