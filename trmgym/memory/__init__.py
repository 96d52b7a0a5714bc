"""Memory: replay buffers (ring, reservoir, per-task) and the associative memory bank."""

from trmgym.memory.associative import AssociativeMemory, MemoryRead
from trmgym.memory.replay import ReservoirBuffer, RingBuffer, balanced_quotas, check_task_quota

__all__ = [
    "AssociativeMemory",
    "MemoryRead",
    "ReservoirBuffer",
    "RingBuffer",
    "balanced_quotas",
    "check_task_quota",
]
