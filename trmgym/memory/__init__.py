"""Memory: replay buffers (ring, reservoir, per-task) and the associative memory bank."""

from trmgym.memory.replay import ReservoirBuffer, RingBuffer

__all__ = ["ReservoirBuffer", "RingBuffer"]
