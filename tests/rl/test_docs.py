import importlib.util
import subprocess
import sys
from pathlib import Path

from aees_gym.envs.instances import registered_instance_sets
from aees_gym.envs.registration import env_id
from aees_gym.tasks import registered_tasks

GENERATOR = Path(__file__).resolve().parents[2] / "docs" / "generate.py"
_spec = importlib.util.spec_from_file_location("generate_env_docs", GENERATOR)
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)
DOC_PATH, load_timings, render = generate.DOC_PATH, generate.load_timings, generate.render



def test_environments_page_matches_the_registries():
    # A fresh process sees exactly the registries `import aees_gym` builds (tests may register extra tasks).
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_page_documents_every_id_feature_bound_and_instance_set():
    page = DOC_PATH.read_text()
    timings = load_timings()
    for spec in registered_tasks().values():
        assert f"### `{env_id(spec.name)}`" in page
        stored = timings[env_id(spec.name)]
        if not spec.requires_files:
            assert stored["settings"] == "defaults" and stored["seconds_per_step"] > 0
    for name in registered_instance_sets():
        assert f"### `{name}`" in page
    assert "| 11 | `loss_level` | -10 | 10 |" in page


def test_render_is_pure_and_shows_measurements():
    tasks = {"Digits": registered_tasks()["Digits"]}
    timing = {"aees_gym/Digits-v0": {"seconds_per_step": 0.0123, "settings": "defaults"}}
    page = render(tasks, {}, timing)
    assert page == render(tasks, {}, timing)
    assert "0.0123 s (defaults)" in page and "not measured" not in page
    assert "not measured" in render(tasks, {}, {})
