"""Meta-learning: MAML / first-order MAML with torch.func, test-time training, few-shot transfer."""

from trmgym.meta.maml import ALGORITHMS, MAML
from trmgym.meta.tasks import FewShotBatch, TRMObjective, arcgen_batch

__all__ = ["ALGORITHMS", "MAML", "FewShotBatch", "TRMObjective", "arcgen_batch"]
