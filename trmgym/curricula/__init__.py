"""Curricula: task sequences and schedulers that order the tasks of a continual run."""
