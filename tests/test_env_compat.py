"""The env in other libraries' hands: unknown keywords as TypeError, ansi render from reset on, TorchRL."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym.core.errors import UnknownSettingError
from aees_gym.envs.env import AEESEnv
from aees_gym.tasks import make_config

TINY = {"total_steps": 40, "window_length": 10}


def test_an_unknown_setting_is_both_a_key_error_and_a_type_error() -> None:
    for error in (KeyError, TypeError):
        with pytest.raises(error, match=r"Unknown setting\(s\) \['frameskip'\] for task 'Digits'; valid env settings: .*"):
            gym.make("aees_gym/Digits-v0", frameskip=4)
    with pytest.raises(UnknownSettingError) as caught:
        make_config("Synthetic", learning_rate=0.1, zzz=1)
    assert caught.value.names == ("learning_rate", "zzz")
    # The interpreter's phrase for an unexpected keyword, which wrappers match to drop optional keywords.
    message = str(caught.value)
    assert "valid task options" in message
    assert "unexpected keyword argument 'learning_rate', unexpected keyword argument 'zzz'" in message


def test_ansi_render_gives_a_line_from_reset_on_and_declares_its_fps() -> None:
    env = gym.make("aees_gym/Synthetic-v0", render_mode="ansi", **TINY)
    assert AEESEnv.metadata["render_fps"] > 0 and env.metadata["render_fps"] == AEESEnv.metadata["render_fps"]
    env.reset(seed=0)
    first = env.render()
    assert isinstance(first, str) and "steps 0/40" in first and "none run yet" in first
    env.step(0)
    after = env.render()
    assert isinstance(after, str) and "steps 10/40" in after and "reward" in after
    plain = gym.make("aees_gym/Synthetic-v0", **TINY)
    plain.reset(seed=0)
    assert plain.render() is None  # no render mode: nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker warns about a missing render_fps or a None render
        gym_check_env(gym.make("aees_gym/Synthetic-v0", render_mode="ansi", **TINY).unwrapped)


def test_torchrl_gym_env_rollout_and_specs() -> None:
    from torchrl.envs import GymEnv  # in the 'dev' extra, which make test installs
    from torchrl.envs.utils import check_env_specs

    env = GymEnv("aees_gym/Digits-v0", **TINY)  # TorchRL passes frameskip and drops it on the TypeError
    rollout = env.rollout(3)
    assert rollout.batch_size == (3,) and rollout["observation"].shape == (3, 13)
    assert rollout["next", "reward"].shape == (3, 1)
    check_env_specs(env, seed=0)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


@pytest.mark.parametrize("vector", [False, True])
def test_info_fields_are_never_none_and_reset_has_every_text_field(vector) -> None:
    """Vector wrappers (TorchRL) type each info field from what they see; None or a late text field breaks them."""
    settings = {**TINY, "eval_every": 1}
    if vector:
        env = gym.make_vec("aees_gym/Synthetic-v0", num_envs=2, vectorization_mode="vector_entry_point", **settings)
    else:
        env = gym.make("aees_gym/Synthetic-v0", **settings)
    _, reset_info = env.reset(seed=0)
    infos, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        infos.append(info)
        done = bool(np.all(terminated | truncated)) if vector else terminated or truncated
    for info in [reset_info, *infos]:
        for key, value in info.items():
            assert all(leaf is not None for leaf in _leaves(value)), key
    text_keys = {k for info in infos for k, v in info.items()
                 if isinstance(v, str) or (isinstance(v, np.ndarray) and v.size and all(isinstance(x, str) for x in v.ravel()))}
    assert {"candidate_name", "reward_error"} <= text_keys <= set(reset_info)
    assert set(reset_info["reward_terms"]) == set(infos[0]["reward_terms"])


def test_torchrl_wraps_the_batched_engine_across_episode_ends() -> None:
    from gymnasium.vector import AutoresetMode
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    vec = gym.make_vec("aees_gym/Synthetic-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       autoreset_mode=AutoresetMode.DISABLED, **TINY)
    env = GymWrapper(vec)  # TorchRL resets ended sub-envs itself (reset_mask)
    n_windows = gym.make("aees_gym/Synthetic-v0", **TINY).unwrapped.config.n_windows
    rollout = env.rollout(2 * n_windows + 1, break_when_any_done=False)
    assert rollout.batch_size == (3, 2 * n_windows + 1)
    assert int(rollout["next", "done"].sum()) == 3 * 2  # every sub-env ran two whole episodes and started a third
    assert torch.isfinite(rollout["next", "reward"]).all()
    check_env_specs(env, seed=0)
