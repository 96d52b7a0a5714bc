"""Curiosity: intrinsic rewards (RND, count-based, forward-model surprise) and Gymnasium wrappers.

- :class:`RND` — Random Network Distillation (Burda et al. 2018).
- :class:`CountBonus` — SimHash or exact state counts, ``beta / sqrt(n)`` (Tang et al. 2017).
- :class:`ForwardModelSurprise` — ICM forward-model error with an inverse model (Pathak et al. 2017).
- :class:`CombinedBonus` — a weighted sum of bonuses.
- :class:`IntrinsicReward` / :class:`IntrinsicRewardVector` — wrappers adding ``coef * bonus`` to
  the reward of a single / vector env and training the bonus online.

This room imports numpy, torch and gymnasium only (DESIGN.md's layering).
"""

from trmgym.curiosity.base import IntrinsicBonus
from trmgym.curiosity.combined import CombinedBonus
from trmgym.curiosity.counts import CountBonus
from trmgym.curiosity.encoding import ActionEncoder, ObservationEncoder, default_obs_keys
from trmgym.curiosity.icm import ForwardModelSurprise
from trmgym.curiosity.normalize import ObservationNormalizer, ReturnNormalizer, RunningMoments
from trmgym.curiosity.rnd import RND
from trmgym.curiosity.wrappers import IntrinsicReward, IntrinsicRewardVector

__all__ = [
    "RND",
    "ActionEncoder",
    "CombinedBonus",
    "CountBonus",
    "ForwardModelSurprise",
    "IntrinsicBonus",
    "IntrinsicReward",
    "IntrinsicRewardVector",
    "ObservationEncoder",
    "ObservationNormalizer",
    "ReturnNormalizer",
    "RunningMoments",
    "default_obs_keys",
]
