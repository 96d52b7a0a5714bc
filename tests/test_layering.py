"""Imports point one way (DESIGN.md, "Layout"): checked on the source with ``ast``.

- ``envs``, ``memory`` and ``curiosity`` import nothing of trmgym outside themselves (the shared
  leaf ``trmgym.checks`` aside);
- no room imports the core modules (``cli``, ``runner``, ``experiment``, ``checkpoint``,
  ``results``, ``report``, ``logging``, ``rundir``, ``config``, ``threads``); ``trmgym.metrics``,
  ``trmgym.distributed`` (torch.distributed helpers), ``trmgym.workers`` (spawned worker
  pools) and ``trmgym.atomic`` (atomic writes Ctrl-C cannot cut) are leaves any room may use, and import nothing of trmgym themselves;
- the rooms' own order: ``agents`` may use ``envs``/``memory``/``curiosity``; ``plugins``,
  ``meta`` and ``curricula`` may use ``agents`` and ``envs``; nothing below imports what is above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trmgym"
ROOMS = ("envs", "memory", "curiosity", "agents", "plugins", "meta", "curricula")
CORE = (
    "cli",
    "runner",
    "experiment",
    "checkpoint",
    "results",
    "report",
    "logging",
    "rundir",
    "config",
    "threads",
    "fewshot_job",
)
LEAVES = (
    "trmgym.checks",
    "trmgym.metrics",
    "trmgym.distributed",
    "trmgym.workers",
    "trmgym.atomic",
)
#: what each room may import besides itself and the leaves
ALLOWED = {
    "envs": (),
    "memory": (),
    "curiosity": (),
    "agents": ("envs", "memory", "curiosity"),
    "plugins": ("agents", "envs", "memory", "curiosity"),
    "meta": ("agents", "envs", "memory", "curiosity", "plugins"),
    "curricula": ("agents", "envs", "memory", "curiosity", "plugins"),
}


def trmgym_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``trmgym...`` import in a file (relative ones resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("trmgym")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == "trmgym":  # `from trmgym import x`: x is the module
                found += [(node.lineno, f"trmgym.{a.name}") for a in node.names]
            elif module.startswith("trmgym."):
                found.append((node.lineno, module))
    return found


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_what_they_may(room: str) -> None:
    assert (PACKAGE / room / "__init__.py").is_file(), f"trmgym/{room} is a room of DESIGN.md"
    allowed = {room, *ALLOWED[room]}
    wrong = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for line, module in trmgym_imports(path):
            if module in LEAVES or module.startswith(tuple(f"{leaf}." for leaf in LEAVES)):
                continue
            target = room_of(module)
            if target == "__init__" or module == "trmgym":
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module} (the package)")
            elif target in CORE:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports core module {module}")
            elif target not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not wrong, "imports against DESIGN.md's layering:\n" + "\n".join(wrong)


def test_leaves_import_nothing_of_trmgym() -> None:
    for leaf in LEAVES:
        path = PACKAGE / (leaf.split(".")[1] + ".py")
        assert trmgym_imports(path) == [], f"{leaf} must stay a leaf"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker is not vacuous: a bad import in a room file is found and resolved."""
    fake = PACKAGE / "envs" / "core.py"
    found = dict((m, line) for line, m in trmgym_imports(fake))
    assert "trmgym.envs.source" in found  # absolute imports are seen
    bad = tmp_path / "x.py"
    bad.write_text("from trmgym.runner import evaluate\nimport trmgym.experiment\n")
    modules = [m for _, m in trmgym_imports_at(bad)]
    assert modules == ["trmgym.runner", "trmgym.experiment"]


def trmgym_imports_at(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trmgym"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("trmgym")]
    return sorted(found)
