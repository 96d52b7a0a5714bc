"""Shared test setup: puzzle caches go to a per-session temporary folder, never ~/.cache."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    if "TRMGYM_CACHE" not in os.environ:
        os.environ["TRMGYM_CACHE"] = str(tmp_path_factory.mktemp("trmgym-cache"))
