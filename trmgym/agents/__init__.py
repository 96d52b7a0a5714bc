"""Agents: the Tiny Recursive Model, its halting heads, and the TRM agent."""

from trmgym.agents.halting import BCEHalting, DQNHalting, DQNHaltingConfig
from trmgym.agents.trm import EMA, TRM, TRMCarry, TRMConfig, TRMOutput
from trmgym.agents.trm_agent import AgentCarry, TRMAgent, TRMAgentConfig

__all__ = [
    "EMA",
    "TRM",
    "AgentCarry",
    "BCEHalting",
    "DQNHalting",
    "DQNHaltingConfig",
    "TRMAgent",
    "TRMAgentConfig",
    "TRMCarry",
    "TRMConfig",
    "TRMOutput",
]
