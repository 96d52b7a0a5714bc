"""Memory: replay buffers (ring, reservoir, per-task) and the associative memory bank."""
