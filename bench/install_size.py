"""Disk size of an install: the whole virtualenv, and what each set of extras pulls in.

``python bench/install_size.py`` (a minute; reads only file sizes) measures, in the virtualenv that
runs it, (1) the size of the virtualenv folder as ``du`` counts it (allocated blocks), and (2) for
each extras set, the installed files of every distribution that ``pip install -e ".[EXTRAS]"``
resolves to (aees-gym's requirements followed through the installed metadata, markers evaluated for
this interpreter; sizes from each distribution's RECORD). It writes ``results/bench/install_size.json``
atomically (``--out`` elsewhere: the CUDA-build measurement is ``install_size_cuda.json``). Distributions
that are not installed here (an extra the virtualenv lacks) are listed as missing, so a partial
environment never reads as a small install.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from aees_gym.core.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "install_size.json"
#: The extras sets the README names: everything `make` installs, and what the demo alone needs.
SETS = {"all,dev": "make demo / make test (pip install -e '.[all,dev]')",
        "data,sb3,refs,plot": "the demo alone (pip install -e '.[data,sb3,refs,plot]')",
        "": "the environment alone (pip install -e .)",
        "vision": "torchvision for downloads (pip install -e '.[vision]': torch 2.14.1, CUDA build on x86_64 Linux)"}


def closure(root: str, extras: set[str]) -> tuple[dict[str, metadata.Distribution], list[str]]:
    """Installed distributions that ``root[extras]`` requires (transitively), and the names not installed."""
    found: dict[str, metadata.Distribution] = {}
    active: dict[str, set[str]] = {}
    missing: list[str] = []
    stack = [(root, set(extras))]
    while stack:
        name, wanted = stack.pop()
        key = canonicalize_name(name)
        if key in active and wanted <= active[key]:
            continue
        try:
            dist = found.get(key) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found[key] = dist
        active[key] = active.get(key, set()) | wanted
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in active[key]] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                stack.append((req.name, set(req.extras)))
    return found, sorted(set(missing))


def dist_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        try:
            total += os.path.getsize(dist.locate_file(f))
        except OSError:
            continue
    return total


def folder_blocks(path: Path) -> int:
    """Allocated bytes under ``path`` (what ``du`` reports), each inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for name in [*files, *dirs]:  # du counts the folders' own blocks too
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    venv = Path(sys.prefix).resolve()
    record = {"python": sys.version.split()[0], "torch": _version("torch"), "venv_du_bytes": folder_blocks(venv), "extras": {}}
    for extras, what in SETS.items():
        dists, missing = closure("aees-gym", {e for e in extras.split(",") if e})
        sizes = {name: dist_bytes(d) for name, d in dists.items()}
        largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
        record["extras"][extras or "(none)"] = {"what": what, "distributions": len(dists), "bytes": sum(sizes.values()),
                                                "largest": {k: v for k, v in largest}, "missing": missing}
        print(f"{extras or '(none)':>20}: {sum(sizes.values()) / 1e9:.2f} GB in {len(dists)} distributions; missing {missing}")
    print(f"virtualenv {venv.name}: {record['venv_du_bytes'] / 2**30:.2f} GiB (du)")
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
