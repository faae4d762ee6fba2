import subprocess
import sys

from aees_gym.docs import DOC_PATH, load_timings, render
from aees_gym.instances import registered_instance_sets
from aees_gym.tasks import registered_tasks


def test_environments_page_matches_the_registries():
    # A fresh process sees exactly the registries `import aees_gym` builds (tests may register extra tasks).
    result = subprocess.run([sys.executable, "-m", "aees_gym.docs", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_page_documents_every_id_feature_bound_and_instance_set():
    page = DOC_PATH.read_text()
    timings = load_timings()
    for spec in registered_tasks().values():
        assert f"### `{spec.env_id}`" in page
        stored = timings[spec.env_id]
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
