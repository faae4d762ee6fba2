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


# ---------------------------------------------------------------- info_format="numeric" (TorchRL's info reader)
def _numeric_infos(vector: bool, info_format: str):
    settings = {**TINY, "info_format": info_format}
    if vector:
        env = gym.make_vec("aees_gym/Synthetic-v0", num_envs=2, vectorization_mode="vector_entry_point", **settings)
    else:
        env = gym.make("aees_gym/Synthetic-v0", **settings)
    infos = [env.reset(seed=0)[1]]
    rng = np.random.default_rng(0)
    for _ in range((env if vector else env.unwrapped).config.n_windows):
        action = rng.integers(9, size=2) if vector else int(rng.integers(9))
        infos.append(env.step(action)[4])
    return infos


@pytest.mark.parametrize("vector", [False, True])
def test_numeric_info_has_the_same_flat_number_keys_at_reset_and_every_step(vector) -> None:
    from aees_gym.core.window import NUMERIC_INFO

    full, numeric = _numeric_infos(vector, "full"), _numeric_infos(vector, "numeric")
    for info in numeric:
        public = {k: v for k, v in info.items() if not k.startswith("_")}  # vector envs add "_key" masks
        assert set(public) == set(NUMERIC_INFO)
        for key, value in public.items():
            kind = type(NUMERIC_INFO[key])
            assert (np.asarray(value).dtype.kind == np.dtype(kind).kind) if vector else type(value) is kind, key
    assert numeric[0]["mode_id"] == -1 if not vector else (numeric[0]["mode_id"] == -1).all()
    # The numeric layout carries the full layout's values (same seed, same run), reward terms flattened.
    for f, n in zip(full[1:], numeric[1:], strict=True):
        np.testing.assert_array_equal(n["mode_id"], f["action"])
        for term, value in f["reward_terms"].items():
            if not term.startswith("_"):
                np.testing.assert_array_equal(n[f"reward_terms_{term}"], value)
        for key in ("steps_done", "lr_multiplier", "loss_last", "window_steps", "diverged", "ema_end"):
            np.testing.assert_array_equal(n[key], f[key])
        np.testing.assert_array_equal(n["run_seed"], full[0]["run_seed"])  # repeated from reset at every step
    # Every number of the full step info is in the numeric layout (a new number field must be added there).
    copy0 = {k: v[0] if vector else v for k, v in full[1].items() if not k.startswith("_") and not isinstance(v, dict)}
    numbers = {k for k, v in copy0.items() if np.ndim(v) == 0 and np.asarray(v).dtype.kind in "biuf"}
    assert numbers - {"action"} <= set(NUMERIC_INFO) and "diverged" in numbers


def test_numeric_info_passes_gymnasiums_checker_and_a_bad_format_names_the_choices() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make("aees_gym/Synthetic-v0", info_format="numeric", **TINY).unwrapped)
    for make in (lambda: gym.make("aees_gym/Synthetic-v0", info_format="flat", **TINY),
                 lambda: gym.make_vec("aees_gym/Synthetic-v0", num_envs=2, info_format="flat", **TINY)):
        with pytest.raises(ValueError, match=r"info_format='flat' is not valid; choose 'full' .* or 'numeric'"):
            make()


@pytest.mark.slow  # two worker processes start and import torch: ~15 s on a loaded 2-core machine
def test_torchrl_gym_env_with_num_envs_reads_the_numeric_info() -> None:
    from torchrl.envs import GymEnv
    from torchrl.envs.utils import check_env_specs

    # TorchRL builds an AsyncVectorEnv of two copies and registers a reader for every info field; the
    # "aees_gym:" prefix makes each worker process import aees_gym, which registers the id there.
    env = GymEnv("aees_gym:aees_gym/Synthetic-v0", num_envs=2, info_format="numeric", **TINY)
    rollout = env.rollout(3)  # random actions
    assert rollout.batch_size == (2, 3) and rollout["next", "observation"].shape == (2, 3, 13)
    reward = rollout["next", "reward"]
    assert reward.shape == (2, 3, 1) and torch.isfinite(reward).all()
    assert torch.allclose(rollout["next", "reward_terms_reward"].float(), reward.squeeze(-1))
    assert (rollout["next", "steps_done"] == torch.tensor([10, 20, 30])).all()
    assert (rollout["next", "mode_id"] == rollout["action"].argmax(-1)).all()  # one-hot action → the grid cell run
    assert (rollout["next", "loss_last"] > 0).all() and (rollout["loss_last"][:, 0] == -1).all()  # -1: none run yet
    check_env_specs(env, seed=0)


@pytest.mark.parametrize("mode", ["SameStep", "Disabled"])
def test_torchrl_wraps_the_batched_engine_with_numeric_info_across_episode_ends(mode) -> None:
    from gymnasium.vector import AutoresetMode
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    vec = gym.make_vec("aees_gym/Synthetic-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       autoreset_mode=AutoresetMode(mode), info_format="numeric", **TINY)
    env = GymWrapper(vec)
    if mode == "Disabled":  # TorchRL reads no info of a DISABLED vector env unless asked
        env = env.auto_register_info_dict()
    n = vec.config.n_windows
    rollout = env.rollout(n + 2, break_when_any_done=False)
    assert rollout.batch_size == (2, n + 2)
    done = rollout["next", "done"].squeeze(-1)
    assert done[:, n - 1].all() and int(done.sum()) == 2  # each copy ended its run once and started another
    reward = rollout["next", "reward"].squeeze(-1)
    assert torch.isfinite(reward).all()
    assert torch.allclose(rollout["next", "reward_terms_reward"].float(), reward)
    # The step that ends a run shows that run's last window and final observation, the next step a new run.
    assert (rollout["next", "window_index"][:, n - 1] == n - 1).all()
    assert (rollout["next", "observation"][:, n - 1, 0] == 1.0).all()  # progress
    assert (rollout["window_index"][:, n] == 0).all() and (rollout["observation"][:, n, 0] == 0.0).all()
    check_env_specs(env, seed=0)
