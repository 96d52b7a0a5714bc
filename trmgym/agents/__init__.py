"""Agents: the Tiny Recursive Model, its halting heads, continual strategies and baselines."""
