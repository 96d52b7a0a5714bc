"""Agents: the Tiny Recursive Model, its halting heads, the TRM agent and continual strategies."""

from trmgym.agents.halting import BCEHalting, DQNHalting, DQNHaltingConfig
from trmgym.agents.strategies import STRATEGIES, PuzzleMemory, Strategy, make_strategy
from trmgym.agents.trm import EMA, TRM, TRMCarry, TRMConfig, TRMOutput
from trmgym.agents.trm_agent import AgentCarry, TRMAgent, TRMAgentConfig

__all__ = [
    "EMA",
    "STRATEGIES",
    "TRM",
    "AgentCarry",
    "BCEHalting",
    "DQNHalting",
    "DQNHaltingConfig",
    "PuzzleMemory",
    "Strategy",
    "TRMAgent",
    "TRMAgentConfig",
    "TRMCarry",
    "TRMConfig",
    "TRMOutput",
    "make_strategy",
]
