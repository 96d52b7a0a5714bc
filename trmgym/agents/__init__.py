"""Agents: the Tiny Recursive Model, its halting heads, its memory reader, and the TRM agent."""

from trmgym.agents.halting import BCEHalting, DQNHalting, DQNHaltingConfig
from trmgym.agents.memory_reader import MemoryConfig, MemoryReader
from trmgym.agents.trm import EMA, TRM, TRMCarry, TRMConfig, TRMOutput
from trmgym.agents.trm_agent import AgentCarry, TRMAgent, TRMAgentConfig

__all__ = [
    "EMA",
    "TRM",
    "AgentCarry",
    "BCEHalting",
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
