"""Vision tasks on data written in the real on-disk formats (CIFAR pickles, MNIST IDX) or shipped on PyPI."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

import aees_gym
from aees_gym import get_task, make_config, registered_tasks
from aees_gym.tasks import prepare, vision
from aees_gym.tasks.base import RunSeeds
from aees_gym.tasks.classification import corrupt_labels
from aees_gym.tasks.image_pipeline import DeviceAugment, FastPath, InputNormalize, random_crop, random_flip, wrap_image_model
from aees_gym.tasks.models import VGG16_LAYERS, resnet8, resnet18
from tests.tasks.conftest import write_idx

VISION_IDS = ["CIFAR100", "CIFAR10", "MNIST"]
# The env checkers reset and step many times; two-step windows keep that to seconds.
CHECKER = {"total_steps": 4, "window_length": 2, "batch_size": 8}



def smoke(task, data_dir, **extra):
    return {**get_task(task).smoke_overrides, "data_dir": str(data_dir), **extra}


@pytest.fixture
def data_dirs(cifar_dir, mnist_dir):
    return {"CIFAR100": cifar_dir, "CIFAR10": cifar_dir, "MNIST": mnist_dir}


def build(task, data_dir, seed=0, **overrides):
    config = make_config(task, **smoke(task, data_dir, **overrides))
    return get_task(task).build(config, RunSeeds.derive(seed))


# ---------------------------------------------------------------------------- loaders
def test_vision_ids_are_registered_as_file_tasks():
    tasks = registered_tasks()
    for name in VISION_IDS:
        assert tasks[name].requires_files and tasks[name].smoke_overrides
        assert f"aees_gym/{name}-v0" in gym.registry


@pytest.mark.parametrize(("layout", "key"), [(vision.CIFAR10, "cifar10"), (vision.CIFAR100, "cifar100")])
def test_cifar_reader_reads_the_pickle_batches(cifar_data, layout, key):
    arrays = vision.read_cifar(layout, cifar_data.root)
    x_train, y_train, x_test, y_test = cifar_data.arrays[key]
    assert arrays.x_train.dtype == np.uint8 and arrays.x_train.shape == (len(x_train), 3, 32, 32)
    np.testing.assert_array_equal(arrays.x_train, x_train)
    np.testing.assert_array_equal(arrays.y_train, y_train)
    np.testing.assert_array_equal(arrays.x_test, x_test)
    np.testing.assert_array_equal(arrays.y_test, y_test)
    # A row of `data` is the red plane, then green, then blue (1,024 bytes each).
    row = x_train.reshape(len(x_train), 3072)[0]
    np.testing.assert_array_equal(arrays.x_train[0, 1].ravel(), row[1024:2048])
    assert (arrays.coarse_train is not None) == (key == "cifar100")


def test_mnist_reads_the_idx_files_without_torchvision(mnist_data, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(mnist_data.root, tmp_path, dirs_exist_ok=True)  # a fresh folder: nothing cached for it
    monkeypatch.setitem(sys.modules, "torchvision", None)  # reading must not need the vision extra
    arrays = vision.read_mnist(vision.MnistOptions(data_dir=str(tmp_path)))
    x_train, y_train, x_test, y_test = mnist_data.arrays["mnist"]
    assert arrays.x_train.shape == (96, 1, 28, 28) and arrays.x_train.dtype == np.uint8 and arrays.y_train.dtype == np.int64
    np.testing.assert_array_equal(arrays.x_train[:, 0], x_train)
    np.testing.assert_array_equal(arrays.y_train, y_train)
    np.testing.assert_array_equal(arrays.x_test[:, 0], x_test)
    np.testing.assert_array_equal(arrays.y_test, y_test)
    assert vision.MnistOptions(source="torchvision").source == "idx"  # the earlier name still works


def _broken_idx(raw: Path, name: str) -> None:
    """Break ``name`` under ``raw`` one way per file name, keeping the others valid."""
    images = raw / "train-images-idx3-ubyte"
    labels = raw / "train-labels-idx1-ubyte"
    if name == "magic":
        images.write_bytes(b"\x00\x00\x0d\x03" + images.read_bytes()[4:])  # float type code
    elif name == "truncated":
        images.write_bytes(images.read_bytes()[:-5])
    elif name == "header":
        labels.write_bytes(b"\x00\x00\x08\x01\x00")
    elif name == "count":
        write_idx(labels, np.zeros(95, dtype=np.uint8))
    elif name == "label":
        write_idx(labels, np.full(96, 10, dtype=np.uint8))
    elif name == "overflow":  # a forged shape of ~2^68 bytes: compared as Python ints, never wrapped
        images.write_bytes(b"\x00\x00\x08\x03" + b"\xff" * 8 + (16).to_bytes(4, "big") + images.read_bytes()[16:])
    elif name == "size":
        write_idx(images, np.zeros((96, 32, 32), dtype=np.uint8))


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("magic", "not an IDX file of unsigned bytes with 3 dimension"),
        ("truncated", "declares shape (96, 28, 28) (75264 bytes) but holds 75259"),
        ("header", "ends inside its IDX header"),
        ("count", "holds 96 images but"),
        ("label", "holds label 10; MNIST's labels are 0–9"),
        ("overflow", "declares shape (4294967295, 4294967295, 16)"),
        ("size", "holds 32×32 images; MNIST's are 28×28"),
    ],
)
def test_bad_mnist_idx_files_are_refused_with_the_file_and_the_fix(mnist_data, tmp_path, broken, message):
    import shutil

    shutil.copytree(mnist_data.root, tmp_path, dirs_exist_ok=True)
    _broken_idx(tmp_path / "MNIST" / "raw", broken)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        vision.read_mnist(vision.MnistOptions(data_dir=str(tmp_path), source="idx"))
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)


def test_missing_cifar_names_the_folder_and_the_command(tmp_path):
    env = gym.make("aees_gym/CIFAR100-v0", **smoke("CIFAR100", tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        env.reset(seed=0)
    text = str(err.value)
    assert str(tmp_path / "cifar-100-python") in text
    assert f"aees-gym data prepare cifar100 --data-dir {tmp_path}" in text
    assert "download=True" in text


def test_missing_mnist_names_the_folder_and_the_commands(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        gym.make("aees_gym/MNIST-v0", **smoke("MNIST", tmp_path)).reset(seed=0)
    assert str(tmp_path) in str(err.value)
    assert f"aees-gym data prepare mnist_5k --data-dir {tmp_path}" in str(err.value)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "MNIST" / "raw"))):
        vision.read_mnist(vision.MnistOptions(data_dir=str(tmp_path), source="idx"))


def test_download_without_torchvision_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'aees-gym[vision]'")):
        vision.read_mnist(vision.MnistOptions(data_dir=str(tmp_path), source="idx", download=True))
    with pytest.raises(ImportError, match=re.escape("pip install 'aees-gym[vision]'")):
        vision.read_cifar(vision.CIFAR10, tmp_path, download=True)


def test_torchvision_is_required_only_when_files_must_be_downloaded(cifar_dir, mnist_dir, tmp_path):
    for task, present in (("CIFAR10", cifar_dir), ("CIFAR100", cifar_dir), ("MNIST", mnist_dir)):
        spec = get_task(task)
        assert spec.requirements(make_config(task, data_dir=str(present), download=True)) == {}  # files there: read only
        assert spec.requirements(make_config(task, data_dir=str(tmp_path), download=True)) == {"torchvision": "vision"}
        assert spec.requirements(make_config(task, data_dir=str(tmp_path))) == {}  # fails later, naming the prepare command


def test_download_goes_through_torchvision_and_failures_say_where_to_put_files(tmp_path, monkeypatch):
    # torchvision is only in the `vision` extra (its x86_64 wheels pull in CUDA); `make test` does not install it.
    datasets = pytest.importorskip("torchvision.datasets", reason="downloads need the vision extra")

    # A refused local port: torchvision's real download code runs and fails at once, offline or not.
    monkeypatch.setattr(datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(RuntimeError, match=r"Could not download CIFAR10 into .*copy the extracted files"):
        vision.read_cifar(vision.CIFAR10, tmp_path, download=True)


def test_download_flag_reads_present_files_without_fetching(cifar_dir):
    # The test files fail torchvision's md5 check, so any download attempt would show up as an error.
    arrays = vision.read_cifar(vision.CIFAR10, cifar_dir, download=True)
    assert len(arrays.x_train) == 80


def test_bad_options_name_the_valid_choices():
    with pytest.raises(ValueError, match="resnet18"):
        vision.CifarOptions(model="resnet50")
    with pytest.raises(ValueError, match="mnist_5k"):
        vision.MnistOptions(source="web")
    with pytest.raises(ValueError, match="n_train"):
        vision.CifarOptions(n_train=0)


# ---------------------------------------------------------------------------- label noise
def test_canonical_superclass_table():
    table = np.asarray(vision.CIFAR100_COARSE)
    assert len(table) == 100 and np.all(np.bincount(table) == 5)
    # aquatic mammals (superclass 0): beaver, dolphin, otter, seal, whale.
    assert np.flatnonzero(table == 0).tolist() == [4, 30, 55, 72, 95]


def test_asymmetric_map_is_the_cyclic_shift_inside_each_superclass(cifar_dir):
    arrays = vision.read_cifar(vision.CIFAR100, cifar_dir)
    table = vision.coarse_table(arrays.y_train, arrays.coarse_train)
    np.testing.assert_array_equal(table, vision.CIFAR100_COARSE)
    mapping = vision.superclass_cycle(table)
    assert sorted(mapping) == list(range(100)) and sorted(mapping.values()) == list(range(100))
    assert mapping[4] == 30 and mapping[30] == 55 and mapping[95] == 4
    for fine, target in mapping.items():
        assert target != fine and table[target] == table[fine]
        cycle, c = [fine], target
        while c != fine:
            cycle.append(c)
            c = mapping[c]
        assert len(cycle) == 5


def test_superclasses_come_from_the_files_coarse_labels():
    fine = np.array([0, 1, 2, 3])
    coarse = np.array([7, 7, 9, 7])  # deliberately not the canonical grouping
    table = vision.coarse_table(fine, coarse)
    assert table[:4].tolist() == [7, 7, 9, 7] and table[4] == vision.CIFAR100_COARSE[4]
    with pytest.raises(ValueError, match="more than one coarse"):
        vision.coarse_table(np.array([0, 0]), np.array([1, 2]))


@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
def test_label_noise_protocol_on_cifar100(cifar_dir, kind):
    arrays = vision.read_cifar(vision.CIFAR100, cifar_dir)
    y = arrays.y_train
    mapping = vision.superclass_cycle(vision.coarse_table(y, arrays.coarse_train))
    noisy, mask = corrupt_labels(y, 0.4, 100, seed=3, kind=kind, class_map=mapping)
    assert mask.sum() == round(len(y) * 0.4) == 26
    assert np.all(noisy[mask] != y[mask]) and np.array_equal(noisy[~mask], y[~mask])
    if kind == "asymmetric":
        assert [mapping[int(a)] for a in y[mask]] == noisy[mask].tolist()
    again, mask_again = corrupt_labels(y, 0.4, 100, seed=3, kind=kind, class_map=mapping)
    other, mask_other = corrupt_labels(y, 0.4, 100, seed=4, kind=kind, class_map=mapping)
    assert np.array_equal(again, noisy) and np.array_equal(mask_again, mask)
    assert not np.array_equal(mask_other, mask)


def test_noisy_run_keeps_validation_labels_and_reports_corruption_diagnostics(cifar_dir):
    clean = build("CIFAR100", cifar_dir, seed=5)
    noisy = build("CIFAR100", cifar_dir, seed=5, label_noise=0.25, label_noise_kind="asymmetric")
    assert noisy.description["corrupted"] == 16 and clean.description["corrupted"] == 0
    before_clean, before_noisy = clean.evaluate(), noisy.evaluate()
    # Same seed, same initial model: identical validation metrics prove the validation labels are untouched.
    assert before_noisy["val_loss"] == before_clean["val_loss"]
    assert before_noisy["val_accuracy"] == before_clean["val_accuracy"]
    assert {"train_accuracy_clean_subset", "train_accuracy_corrupted_noisy_labels", "train_accuracy_corrupted_true_labels"} <= set(
        before_noisy
    )


# ---------------------------------------------------------------------------- env contract
@pytest.mark.parametrize("task", VISION_IDS)
def test_gymnasium_env_checker(task, data_dirs):
    env = gym.make(f"aees_gym/{task}-v0", **smoke(task, data_dirs[task], **CHECKER))
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("task", VISION_IDS)
def test_sb3_env_checker(task, data_dirs):
    from stable_baselines3.common.env_checker import check_env

    check_env(gym.make(f"aees_gym/{task}-v0", **smoke(task, data_dirs[task], **CHECKER)).unwrapped, warn=False)


@pytest.mark.parametrize("task", VISION_IDS)
def test_smoke_run_two_windows_with_flops_in_final_metrics(task, data_dirs):
    env = gym.make(f"aees_gym/{task}-v0", **smoke(task, data_dirs[task]))
    obs, info = env.reset(seed=1)
    assert info["flops_per_step"] > 0
    for action in (0, env.action_space.n - 1):
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs) and -1.0 <= reward <= 1.0
        assert info["window_steps"] == 20 and all(np.isfinite(info["step_losses"]))
    assert terminated and not truncated
    final = info["final_metrics"]
    assert final["steps_done"] == 40 and final["total_flops"] == 40 * final["flops_per_step"]
    assert 0.0 <= final["val_accuracy"] <= 1.0


def test_same_seed_same_augmented_trajectory(cifar_dir):
    def losses(seed):
        env = gym.make("aees_gym/CIFAR10-v0", **smoke("CIFAR10", cifar_dir, total_steps=6, window_length=6, batch_size=8))
        env.reset(seed=seed)
        return env.step(5)[4]["step_losses"]  # noise σ > 0 too

    first = losses(3)
    assert losses(3) == first
    assert losses(4) != first


def test_reference_protocol_defaults():
    config = get_task("CIFAR100").default_config()
    assert (config.total_steps, config.batch_size, config.optimizer, config.base_lr) == (200 * 390, 128, "adamw", 1e-3)
    assert (config.weight_decay, config.schedule_interval, config.window_length) == (1e-4, "epoch", 200)
    assert config.options.model == "resnet18" and config.options.augment
    assert vision.steps_for_epochs(200) == 78_000


def test_sgd_override_and_epoch_schedule(cifar_dir):
    run = build("CIFAR100", cifar_dir, optimizer="sgd", base_lr=0.1, schedule="step")
    group = run.optimizer.param_groups[0]
    assert isinstance(run.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-4)
    assert run.steps_per_epoch == 64 // 16 and run.scheduler_every == run.steps_per_epoch


def test_options_round_trip_through_json(cifar_dir):
    config = make_config("CIFAR10", **smoke("CIFAR10", cifar_dir, model="vgg16", autocast=True))
    again = aees_gym.EnvConfig.from_json(config.to_json())
    assert again == config and isinstance(again.options, vision.CifarOptions)


# ---------------------------------------------------------------------------- models
def test_resnet18_has_torchvisions_state_dict_with_the_cifar_stem():
    # The names, shapes and dtypes of torchvision's resnet18 with the CIFAR stem, written by torchvision
    # itself (the file's "source"); matching them is what lets its state_dict load into ours and back.
    reference = json.loads((Path(__file__).parent / "resnet18_torchvision.json").read_text())
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in resnet18(100).state_dict().items()]
    assert ours == reference["state_dict"]
    assert sum(p.numel() for p in resnet18(100).parameters()) == 11_220_132
    assert sum(p.numel() for p in resnet8(10).parameters()) == 78_042


def test_resnet18_computes_what_torchvision_computes():
    # The same forward pass as torchvision's module, where the vision extra is installed.
    torchvision = pytest.importorskip("torchvision", reason="the cross-check needs the vision extra")
    ours = resnet18(100)
    tv = torchvision.models.resnet18(num_classes=100)
    tv.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    tv.maxpool = torch.nn.Identity()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours.eval()(x), tv.eval()(x))


def test_vgg16_variant_trains_and_its_flops_follow_the_closed_form(cifar_dir):
    run = build("CIFAR10", cifar_dir, model="vgg16", batch_size=4, n_train=8)
    convs, size, channels = 0.0, 32, 3
    for item in VGG16_LAYERS:
        if item == "M":
            size //= 2
        else:
            convs += 2 * 9 * channels * item * size * size
            channels = item
    forward = convs + 2 * 512 * 10
    assert run.flops_per_step == 3 * 4 * forward
    loss = run.train_step()
    run.optimizer.step()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


# ---------------------------------------------------------------------------- fast path
def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = (torch.arange(64 * 36) % 250 + 1).to(torch.uint8).view(64, 1, 6, 6)  # no zeros: padding is visible
    gen = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for n in range(64):
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(out[n], padded[n, :, i : i + 6, j : j + 6])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets are drawn per image
    again = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(again, out)


def test_random_flip_flips_about_half_the_images():
    x = torch.randint(0, 255, (200, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(2)) and not torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 60 < int(flipped.sum()) < 140


def test_augmentation_only_in_training_mode():
    aug = DeviceAugment(4, True, seed=0, device=torch.device("cpu"))
    x = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(aug.eval()(x), x)
    assert not torch.equal(aug.train()(x), x)


def test_input_normalize_is_totensor_then_normalize():
    # torchvision's ToTensor (HWC uint8 → CHW float in [0, 1]) then Normalize ((x − mean) / std), in numpy.
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mean, std = np.array(vision.CIFAR100_MEAN), np.array(vision.CIFAR100_STD)
    expected = ((pixels.astype(np.float64) / 255.0 - mean) / std).transpose(2, 0, 1)
    ours = InputNormalize(vision.CIFAR100_MEAN, vision.CIFAR100_STD)(torch.from_numpy(pixels).permute(2, 0, 1)[None])
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours[0].numpy(), expected, rtol=0, atol=1e-5)


def test_autocast_and_channels_last_on_cpu(cifar_dir):
    run = build("CIFAR10", cifar_dir, autocast=True, channels_last=True, batch_size=8)
    assert run.description["autocast"] and run.description["channels_last"]
    conv = next(m for m in run.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append((o.dtype, o.is_contiguous(memory_format=torch.channels_last))))
    loss = run.train_step()
    assert seen == [(torch.bfloat16, True)] and loss.dtype == torch.float32 and torch.isfinite(loss)
    off = build("CIFAR10", cifar_dir, batch_size=8)
    assert not off.description["autocast"] and not off.description["channels_last"]  # CPU default


def test_compile_wraps_only_the_network():
    model = wrap_image_model(
        resnet8(10), mean=(0.5,) * 3, std=(0.5,) * 3, device=torch.device("cpu"),
        fast=FastPath(autocast=False, channels_last=False, compile=True),
        augment=DeviceAugment(4, True, 0, torch.device("cpu")),
    )
    assert isinstance(model[0], DeviceAugment) and isinstance(model[2], torch._dynamo.eval_frame.OptimizedModule)


def test_training_steps_never_read_the_device(cifar_dir, host_reads):
    env = gym.make("aees_gym/CIFAR100-v0", **smoke("CIFAR100", cifar_dir, total_steps=12, window_length=4, batch_size=8))
    env.reset(seed=0)
    run = env.unwrapped.training_run
    calls = host_reads(run.optimizer)
    for action in (5, 1):  # with and without gradient noise; neither window is the last
        before = len(calls)
        *_, terminated, _, info = env.step(action)
        assert not terminated and info["window_steps"] == 4
        assert calls[before:] == ["tolist"], f"host reads inside a window: {calls[before:]}"


# ---------------------------------------------------------------------------- real MNIST subset (PyPI)
@pytest.mark.slow
def test_mnist_5k_prepared_by_the_command_in_the_error_then_trained(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        vision.read_mnist(vision.MnistOptions(data_dir=str(tmp_path), source="mnist_5k"))
    command = shlex.split(re.search(r"`(aees-gym [^`]+)`", str(err.value)).group(1))
    subprocess.run([sys.executable, "-m", "aees_gym.cli", *command[1:]], check=True, capture_output=True)
    path = tmp_path / prepare.MNIST_5K_FILE
    mtime = path.stat().st_mtime_ns
    assert prepare.prepare_dataset("mnist_5k", tmp_path) == path and path.stat().st_mtime_ns == mtime  # cached
    arrays = vision.read_mnist(vision.MnistOptions(data_dir=str(tmp_path)))
    assert arrays.x_train.shape == (4000, 1, 28, 28) and len(arrays.x_test) == 1000
    assert np.all(np.bincount(arrays.y_train) == 400) and np.all(np.bincount(arrays.y_test) == 100)
    assert arrays.x_train.max() == 255 and len(np.unique(arrays.y_train[:50])) == 10  # shuffled, real pixels
    env = gym.make("aees_gym/MNIST-v0", **smoke("MNIST", tmp_path))
    env.reset(seed=0)
    first = env.step(4)[4]
    *_, terminated, _, info = env.step(4)
    assert terminated and info["final_metrics"]["val_accuracy"] > 0.2
    assert np.mean(info["step_losses"]) < np.mean(first["step_losses"])


def test_preparer_registry_lists_and_rejects_unknown_names(capsys):
    names = prepare.available_datasets()
    assert {"mnist_5k", "mnist", "cifar10", "cifar100"} <= set(names)
    prepare.main(["--list"])
    assert "mnist_5k" in capsys.readouterr().out
    with pytest.raises(KeyError, match="available"):
        prepare.prepare_dataset("nope", "unused")
    assert dataclasses.is_dataclass(prepare.Preparer)


def test_gpu_epoch_bench_cpu_smoke_writes_its_json(tmp_path):
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:  # bench/ is a folder of scripts at the repository root
        sys.path.insert(0, str(root))
    from bench import gpu_epoch

    out = tmp_path / "gpu_epoch.json"
    gpu_epoch.main(["--cpu-smoke", "--steps", "2", "--repeats", "1", "--data-dir", str(tmp_path / "none"), "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["mode"].startswith("cpu-smoke") and result["settings"]["model"] == "resnet8"
    assert set(result["ratio_vs_plain"]) == {"reference", "env", "env_noise_0.005"}
    assert set(result["round_ratios"]) == {"plain_over_reference", "env_over_plain", "env_noise_0.005_over_plain"}
    assert all(v > 0 for v in result["ms_per_step"].values()) and "random pixels" in result["data"]
