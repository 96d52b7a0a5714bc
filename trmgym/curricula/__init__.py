"""Curricula: task sequences and schedulers that order the tasks of a continual run."""

from trmgym.curricula.sequence import TaskSequence, TaskSpec

__all__ = ["TaskSequence", "TaskSpec"]
