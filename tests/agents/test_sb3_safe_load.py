"""Loading an SB3 policy runs no code from the file, through every route that loads one.

Each planted file carries a pickle whose ``__reduce__`` creates a marker file when unpickled. A
control shows that stable-baselines3's own loader (or ``torch.load`` without ``weights_only``) does
run it, so the payload is live; our loaders must leave no marker.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym.envs.episode import run_episode
from aees_gym.suite import load_suite, run_suite
from aees_gym.suite.results import read_result, result_files
from agents.deploy import load_agent
from agents.sb3 import SB3Agent

SMALL_ENV = {"total_steps": 100, "window_length": 20}


class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes], drop: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            if name not in drop:
                new.writestr(name, replace.get(name, old.read(name)))
    return dst


def plant_in_data(src: Path, dst: Path, marker: Path, *, plain: bool) -> Path:
    """``src`` with the payload as the ``:serialized:`` value of every pickled ``data`` entry."""
    with zipfile.ZipFile(src) as archive:
        data = json.loads(archive.read("data"))
    evil = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    for entry in data.values():
        if isinstance(entry, dict) and ":serialized:" in entry:
            entry[":serialized:"] = evil
    return _rewrite(src, dst, {"data": json.dumps(data).encode()}, drop=("aees_agent.json",) if plain else ())


def plant_in_weights(src: Path, dst: Path, marker: Path) -> Path:
    buffer = io.BytesIO()
    torch.save({"weights": Payload(marker)}, buffer)
    return _rewrite(src, dst, {"policy.pth": buffer.getvalue()})


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 32, "batch_size": 32})
    agent.learn("Synthetic-v0", 32, seed=0, env_kwargs=SMALL_ENV)
    return agent.save(tmp_path_factory.mktemp("saved") / "policy.zip")


def actions(agent: SB3Agent) -> list[int]:
    return [int(a) for a in run_episode(gym.make("aees_gym/Synthetic-v0", **SMALL_ENV), agent, seed=5).actions]


def test_the_payloads_are_live_for_unguarded_loaders(saved: Path, tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="not a Gymnasium space"):  # it fails only after running the payload
        PPO.load(plant_in_data(saved, tmp_path / "data.zip", marker, plain=True), device="cpu")
    assert marker.exists()  # SB3's loader unpickles the data entries
    marker.unlink()
    with zipfile.ZipFile(plant_in_weights(saved, tmp_path / "w.zip", marker)) as archive:
        torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("plain", [False, True], ids=["own-save", "plain-sb3"])
@pytest.mark.parametrize("route", ["SB3Agent.load", "deploy.load_agent"])
def test_a_payload_in_the_data_json_never_runs(saved: Path, tmp_path: Path, plain: bool, route: str) -> None:
    marker = tmp_path / "ran"
    planted = plant_in_data(saved, tmp_path / "planted.zip", marker, plain=plain)
    extra = {"algo": "ppo"} if plain else {}
    agent = SB3Agent.load(planted, **extra) if route == "SB3Agent.load" else load_agent(planted, **extra)[0]
    assert not marker.exists()
    # The pickled entries were not needed: the policy acts as the one saved.
    assert actions(agent) == actions(SB3Agent.load(saved))


@pytest.mark.parametrize("route", ["SB3Agent.load", "deploy.load_agent"])
def test_a_payload_in_a_weight_file_is_refused_without_running(saved: Path, tmp_path: Path, route: str) -> None:
    marker = tmp_path / "ran"
    planted = plant_in_weights(saved, tmp_path / "planted.zip", marker)
    loader = SB3Agent.load if route == "SB3Agent.load" else load_agent
    with pytest.raises(ValueError, match=r"policy.pth holds something other than plain tensors.*weights_only=True"):
        loader(planted)
    assert not marker.exists()


def test_a_suite_rerun_over_a_planted_model_runs_nothing_from_it(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "planted"\nseeds = [0]\n[[tasks]]\nname = "Synthetic"\n[[agents]]\nname = "sb3"\n'
        'kwargs = { algo_kwargs = { n_steps = 8, batch_size = 8 } }\ntraining = { total_timesteps = 8, seed = 100 }\n'
        "[env]\ntotal_steps = 40\nwindow_length = 10\n"
    )
    spec = load_suite(suite)
    first = run_suite(spec, results_dir=tmp_path / "results", progress=False)
    assert first.exit_code == 0 and first.trained == 1
    (model,) = (first.suite_dir / "models").glob("*.zip")
    marker = tmp_path / "ran"
    planted = plant_in_weights(plant_in_data(model, tmp_path / "d.zip", marker, plain=True), tmp_path / "dw.zip", marker)
    planted.replace(model)
    for path in result_files(first.suite_dir):
        path.unlink()
    again = run_suite(spec, results_dir=tmp_path / "results", progress=False)
    assert again.trained == 0 and again.ran == 1  # the planted file is the model: it is loaded, not retrained
    (result,) = [read_result(p) for p in result_files(first.suite_dir)]
    assert result.status == "error" and "weights_only=True" in result.error["message"]
    assert not marker.exists()


def test_settings_naming_other_code_are_refused(saved: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        meta = json.loads(archive.read("aees_agent.json"))
    meta["policy_kwargs"] = {"activation_fn": {"__class__": "os.system"}}
    planted = _rewrite(saved, tmp_path / "cls.zip", {"aees_agent.json": json.dumps(meta).encode()})
    with pytest.raises(ValueError, match=r"names class 'os.system'; policy files may name classes from \['torch.nn'"):
        SB3Agent.load(planted)
    meta["policy_kwargs"] = {"x": {"__reduce__": "anything"}}
    planted = _rewrite(saved, tmp_path / "form.zip", {"aees_agent.json": json.dumps(meta).encode()})
    with pytest.raises(ValueError, match="unknown form"):
        SB3Agent.load(planted)


def test_a_plain_zip_whose_spaces_are_only_pickled_needs_them_passed(saved: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        data = json.loads(archive.read("data"))
    data["observation_space"] = {":type:": "<class 'gymnasium.spaces.box.Box'>", ":serialized:": "AAAA"}
    planted = _rewrite(saved, tmp_path / "nospace.zip", {"data": json.dumps(data).encode()}, drop=("aees_agent.json",))
    with pytest.raises(ValueError, match=r"observation_space only pickled.*pass observation_space="):
        SB3Agent.load(planted, algo="ppo")
    env = gym.make("aees_gym/Synthetic-v0", **SMALL_ENV)
    loaded = SB3Agent.load(planted, algo="ppo", observation_space=env.observation_space)
    assert actions(loaded) == actions(SB3Agent.load(saved))


def test_own_saves_keep_every_setting_as_json(saved: Path, tmp_path: Path) -> None:
    agent = SB3Agent(
        "ppo", policy_kwargs={"net_arch": {"pi": [16], "vf": [16]}, "activation_fn": torch.nn.Tanh},
        algo_kwargs={"n_steps": 16, "batch_size": 16, "clip_range": 0.1, "gamma": 0.9},
    )
    agent.learn("Synthetic-v0", 16, seed=0, env_kwargs=SMALL_ENV)
    path = agent.save(tmp_path / "kw.zip")
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("aees_agent.json"))
    assert meta["version"] == 2 and meta["policy_kwargs"]["activation_fn"] == {"__class__": "torch.nn.modules.activation.Tanh"}
    assert meta["observation_space"]["type"] == "Box" and meta["action_space"] == {"type": "Discrete", "n": 9, "start": 0}
    loaded = SB3Agent.load(path)
    assert loaded.policy_kwargs["activation_fn"] is torch.nn.Tanh and loaded.model.gamma == 0.9
    assert loaded.model.clip_range(1.0) == 0.1 and loaded.model.num_timesteps == 16
    assert actions(loaded) == actions(agent)
    bad = SB3Agent("ppo", algo_kwargs={"learning_rate": lambda progress: 1e-3 * progress})
    bad.learn("Synthetic-v0", 64, seed=0, env_kwargs=SMALL_ENV)
    with pytest.raises(ValueError, match=r"algo_kwargs\['learning_rate'\] = .*cannot be saved as JSON"):
        bad.save(tmp_path / "lambda.zip")
    assert not (tmp_path / "lambda.zip").exists()
