"""Agents: the Tiny Recursive Model, its halting heads, its memory reader, the TRM agent, and the
baselines (Stable-Baselines3 PPO / DQN / MaskablePPO and random; SB3 is imported on first use)."""

from typing import Any

from trmgym.agents.baseline_configs import (
    BaselineAgentConfig,
    ChunkResult,
    EnvLearner,
    RandomAgentConfig,
    SB3DQNConfig,
    SB3MaskablePPOConfig,
    SB3PPOConfig,
)
from trmgym.agents.halting import BCEHalting, DQNHalting, DQNHaltingConfig
from trmgym.agents.memory_reader import MemoryConfig, MemoryReader
from trmgym.agents.trm import EMA, TRM, TRMCarry, TRMConfig, TRMOutput
from trmgym.agents.trm_agent import AgentCarry, TRMAgent, TRMAgentConfig

#: names of the SB3-backed modules, imported when first asked for
_LAZY = {
    "RandomAgent": "trmgym.agents.random_agent",
    "SB3Agent": "trmgym.agents.baselines",
    "TokenGridExtractor": "trmgym.agents.token_features",
    "make_baseline_agent": "trmgym.agents.baselines",
    "SB3VecEnv": "trmgym.agents.sb3_vec_env",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trmgym.agents' has no attribute {name!r}")


__all__ = [
    "EMA",
    "TRM",
    "AgentCarry",
    "BCEHalting",
    "BaselineAgentConfig",
    "ChunkResult",
    "EnvLearner",
    "RandomAgent",
    "RandomAgentConfig",
    "SB3Agent",
    "SB3DQNConfig",
    "SB3MaskablePPOConfig",
    "SB3PPOConfig",
    "SB3VecEnv",
    "TokenGridExtractor",
    "make_baseline_agent",
    "DQNHalting",
    "DQNHaltingConfig",
    "MemoryConfig",
    "MemoryReader",
    "TRMAgent",
    "TRMAgentConfig",
    "TRMCarry",
    "TRMConfig",
    "TRMOutput",
]
