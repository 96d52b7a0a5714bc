"""The wheel ships every package and every config: a subpackage or a folder of YAML configs
missing from pyproject's list installs broken (or, for now, with a setuptools warning)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip(
    "tomllib", reason="tomllib is in the standard library from Python 3.11"
)

ROOT = Path(__file__).resolve().parents[1]
#: what setuptools prints for a folder of package data that is not a listed package
ABSENT_WARNING = "is absent from the `packages` configuration"


def config_folders() -> set[str]:
    """The packages of the folders under configs/ that hold YAML files (trmgym.configs.agent ...)."""
    return {
        ".".join(("trmgym", "configs", *folder.relative_to(ROOT / "configs").parts))
        for folder in {path.parent for path in (ROOT / "configs").rglob("*.yaml")}
    }


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = (
        {
            ".".join(init.parent.relative_to(ROOT).parts)
            for init in (ROOT / "trmgym").rglob("__init__.py")
            if "configs" not in init.relative_to(ROOT).parts  # a checkout's link to configs/
        }
        | {"trmgym.configs"}
        | config_folders()
    )
    assert "trmgym.configs.strategy" in found
    missing = sorted(found - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    stale = sorted(p for p in listed - found)
    assert not stale, f"pyproject lists packages that do not exist: {stale}"


@pytest.mark.slow
def test_the_wheel_holds_every_config_and_builds_without_warnings(tmp_path: Path) -> None:
    """Built as a fresh clone builds it (no trmgym/configs link), offline, with this
    environment's setuptools."""
    for module in ("setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"building the wheel offline needs {module} (the dev extra)")
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "trmgym", source / "trmgym", ignore=ignore, symlinks=True)
    (source / "trmgym" / "configs").unlink(missing_ok=True)
    shutil.copytree(ROOT / "configs", source / "configs", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-v", "-w", str(tmp_path / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = build.stdout + build.stderr
    assert build.returncode == 0, output[-3000:]
    warnings = [line.strip() for line in output.splitlines() if ABSENT_WARNING in line]
    assert not warnings, "\n".join(warnings)
    (wheel,) = (tmp_path / "dist").glob("trmgym-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        f"trmgym/configs/{path.relative_to(ROOT / 'configs').as_posix()}"
        for path in (ROOT / "configs").rglob("*.yaml")
    }
    assert len(configs) > 20 and configs <= shipped, sorted(configs - shipped)
    assert {"trmgym/py.typed", "trmgym/configs/__init__.py"} <= shipped
