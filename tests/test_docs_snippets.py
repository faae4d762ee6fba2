"""Every code block of the README and docs/*.md works as written.

* ``python`` blocks run, each in a fresh interpreter (working folder: a temporary folder that links
  the repository's ``results/`` and ``experiments/``, so snippets read the archive but write nowhere
  in the repository). A block stands alone unless the line just before its opening fence is the
  marker :data:`CONTINUES`; then it runs after the python blocks before it in the same file, as one
  program. Blocks that train use tiny budgets, so the whole file runs in well under a minute.
* ``bash`` blocks: every command exists — ``make`` targets in the Makefile, ``aees-gym`` subcommands
  in the CLI, ``python -m`` modules importable, scripts and config files present, ``pip install``
  extras declared in pyproject.toml, anything else on ``PATH``.
* Links to files resolve, the README stays short and its task and agent tables list every
  registered task and agent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Written on the line just before a python block's opening fence: the block continues the previous ones.
CONTINUES = "<!-- continues -->"
README_MAX_LINES = 300
SHELL = {"bash", "sh", "shell"}
BUILTINS = {"cd", "export", "echo", "source", "wait", "set"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    continues: bool

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Fenced code blocks of a Markdown page, with their language and continuation marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page.name}:{start + 1}: code block never closed"
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        out.append(Block(page, start + 1, m.group(1).lower(), "\n".join(lines[start + 1:end]) + "\n", before == CONTINUES))
        i = end + 1
    return out


def programs() -> list[tuple[str, str]]:
    """``(name, code)`` of every python program: a standalone block, or a block with the blocks it continues."""
    out: list[tuple[str, list[Block]]] = []
    for page in PAGES:
        previous: list[Block] | None = None
        for block in blocks(page):
            if block.lang != "python":
                continue
            if block.continues:
                assert previous is not None, f"{block.name}: marked {CONTINUES!r} but no python block comes before it"
                previous.append(block)
                out[-1] = (block.name, previous)
            else:
                previous = [block]
                out.append((block.name, previous))
    return [(name, "\n".join(b.code for b in chain)) for name, chain in out]


# Blocks that train a learner take longer than the rest (still seconds of CPU each).
PROGRAMS = [pytest.param(name, code, id=name, marks=[pytest.mark.slow] if ".learn(" in code else [])
            for name, code in programs()]


@pytest.mark.parametrize(("name", "code"), PROGRAMS)
def test_python_block_runs_as_written(name, code, tmp_path):
    for folder in ("results", "experiments"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    script = tmp_path / "snippet.py"  # a file, as a reader would save it (spawned workers re-import it)
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


# --------------------------------------------------------------------------- shell blocks
def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def _cli_commands() -> set[str]:
    from aees_gym.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    return set(sub.choices)


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block (continuations joined, comments and operators removed)."""
    text = code.replace("\\\n", " ")
    out: list[list[str]] = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in {"&&", "||", ";", "|", "&", ";;"}:
                out += [current] if current else []
                current = []
            else:
                current.append(token)
        out += [current] if current else []
    return [stripped for cmd in out if (stripped := _without_assignments(cmd))]


def _without_assignments(cmd: list[str]) -> list[str]:
    """``FOO=1 BAR=2 make demo`` → ``make demo``."""
    i = 0
    while i < len(cmd) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", cmd[i]):
        i += 1
    return cmd[i:]


def problems(cmd: list[str]) -> list[str]:
    """What is wrong with one command ([] when it exists as written)."""
    name, args = cmd[0], cmd[1:]
    found: list[str] = []
    files = [a for a in args if re.search(r"\.(toml|py|yml|yaml|md)$", a) and not a.startswith(("runs/", "/", "-"))]
    found += [f"{a} does not exist" for a in files if "*" not in a and not (ROOT / a).exists()]
    if name == "make":
        found += [f"make target {t!r} is not in the Makefile" for t in args if not t.startswith("-") and "=" not in t
                  and t not in _makefile_targets()]
    elif name == "aees-gym":
        sub = next((a for a in args if not a.startswith("-")), None)
        if sub is not None and sub not in _cli_commands():
            found.append(f"aees-gym has no subcommand {sub!r}")
    elif name in {"python", "python3"}:
        if args[:1] == ["-m"]:
            module = args[1]
            in_repo = ROOT / module.replace(".", "/")  # run from the repository root: experiments.leaderboard
            if not (in_repo.with_suffix(".py").exists() or (in_repo / "__main__.py").exists()) and (
                    importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None):
                found.append(f"python -m {module}: module not importable")
        elif args and not args[0].startswith("-") and not (ROOT / args[0]).exists():
            found.append(f"python {args[0]}: no such script")
    elif name == "pip" or (name.endswith("/pip")):
        for arg in args:
            m = re.search(r"\[([a-z0-9_,-]+)\]", arg)
            if m:
                found += [f"pip extra {e!r} is not declared in pyproject.toml" for e in m.group(1).split(",") if e not in _extras()]
    elif name == "source":
        if args[:1] != [".venv/bin/activate"] and not (ROOT / args[0]).exists():
            found.append(f"source {args[0]}: no such file")
    elif name not in BUILTINS and shutil.which(name) is None:
        found.append(f"command {name!r} not found on PATH")
    return found


SHELL_BLOCKS = [b for page in PAGES for b in blocks(page) if b.lang in SHELL]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.name for b in SHELL_BLOCKS])
def test_shell_block_commands_exist(block):
    cmds = commands(block.code)
    assert cmds, f"{block.name}: empty shell block"
    wrong = [p for cmd in cmds for p in problems(cmd)]
    assert not wrong, f"{block.name}: " + "; ".join(wrong)


def test_shell_checks_catch_what_does_not_exist():
    assert commands("make demo   # comment\nFOO=1 aees-gym list && python -m rl_zoo3.train \\\n  --algo ppo &") == [
        ["make", "demo"], ["aees-gym", "list"], ["python", "-m", "rl_zoo3.train", "--algo", "ppo"]]
    assert problems(["make", "nope"]) and problems(["aees-gym", "nope"]) and problems(["python", "-m", "no_such_module_x"])
    assert problems(["pip", "install", "-e", ".[all,nope]"]) and problems(["no-such-command-x"])
    assert problems(["aees-gym", "suite", "experiments/missing.toml"])
    assert not problems(["pip", "install", "-e", ".[all]"]) and not problems(["source", ".venv/bin/activate"])


def test_continuation_marker_joins_blocks(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(f"```python\nx = 1\n```\n\ntext\n\n{CONTINUES}\n```python\nprint(x)\n```\n```bash\nls\n```\n")
    found = blocks(page)
    assert [(b.lang, b.continues, b.line) for b in found] == [("python", False, 1), ("python", True, 8), ("bash", False, 11)]


# --------------------------------------------------------------------------- pages
def test_readme_is_short_and_lists_every_task_and_agent():
    # A fresh process sees exactly what `import aees_gym` and the installed entry points register
    # (other tests register extra tasks and agents at run time).
    code = ("import json, aees_gym; from aees_gym.tasks import registered_tasks; "
            "from aees_gym.suite.agent_registry import builtin_agent_names; "
            "print(json.dumps([list(registered_tasks()), builtin_agent_names()]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    tasks, agents = json.loads(done.stdout.strip().splitlines()[-1])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    missing_tasks = [t for t in tasks if f"`{t}-v0`" not in readme]
    missing_agents = [a for a in agents if f"`{a}`" not in readme]
    assert not missing_tasks and not missing_agents, f"README tables miss tasks {missing_tasks}, agents {missing_agents}"
    assert "```bash\nmake demo" in readme and "make test" in readme and "source .venv/bin/activate" in readme


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        if not linked.exists():
            bad.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            bad.append(target)
    assert not bad, f"{page.name}: broken links {bad}"
