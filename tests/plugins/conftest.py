"""Shared setup of the plugin tests: the agent tests' one-thread fixture."""

from tests.agents.conftest import _one_thread  # noqa: F401 - an autouse fixture
