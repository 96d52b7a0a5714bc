"""Meta-learning: the MAML family with torch.func, test-time training, the memory bank's episodic
adaptation and the few-shot transfer protocol."""

from trmgym.meta.episodic import EpisodicLearner
from trmgym.meta.maml import ALGORITHMS, MAML
from trmgym.meta.tasks import FewShotBatch, TRMObjective, arcgen_batch

__all__ = ["ALGORITHMS", "MAML", "EpisodicLearner", "FewShotBatch", "TRMObjective", "arcgen_batch"]
