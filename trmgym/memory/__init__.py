"""Memory: replay buffers (ring, reservoir, per-task) and the associative memory bank."""

from trmgym.memory.replay import ReservoirBuffer, RingBuffer, balanced_quotas, check_task_quota

__all__ = ["ReservoirBuffer", "RingBuffer", "balanced_quotas", "check_task_quota"]
