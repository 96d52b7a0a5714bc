"""A Stable-Baselines3 ``VecEnv`` over a native batched trmgym env: all puzzles in one call.

SB3 steps a ``VecEnv``; the usual way to get one, a ``DummyVecEnv`` of ``B`` single envs, runs a
Python loop over the batch. :class:`SB3VecEnv` instead wraps one
:class:`~trmgym.envs.vector.PuzzleVectorEnv` (or any Gymnasium ``VectorEnv`` with same-step
autoreset, e.g. the native env under a plugin's vector wrapper) and translates its conventions to
SB3's, once per step for the whole batch:

==========================  ==========================================  ==========================
                            native env (``autoreset_mode="same_step"``)  SB3 ``VecEnv``
==========================  ==========================================  ==========================
observation                 dict of ``[B, ...]`` arrays                  the same dict
done                        ``terminated | truncated``                   ``dones [B]``
final observation           ``info["final_obs"][i]``                     ``infos[i]["terminal_observation"]``
time-limit truncation       ``truncated[i]`` (and not terminated)        ``infos[i]["TimeLimit.truncated"]``
per-puzzle info             columns ``info[key][i]``                     ``infos[i][key]``
==========================  ==========================================  ==========================

Per-row infos carry every numeric per-puzzle column of the native info (``solved``,
``cell_accuracy``, ``steps``, an ``intrinsic_reward`` a curiosity wrapper adds, family extras);
on a row whose puzzle just ended they describe that finished puzzle (its final info), as a
``DummyVecEnv`` would, while the returned observation is already the next puzzle's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["ACTION_MASKS", "SB3VecEnv", "labelled_observation_space"]

#: the method name MaskablePPO (sb3-contrib) looks for
ACTION_MASKS = "action_masks"
#: info keys that are not per-puzzle values (SAME_STEP bookkeeping, or too large to copy per row)
_SKIPPED = ("final_obs", "final_info", "target", "demos")


def labelled_observation_space(space: spaces.Dict, num_labels: int) -> spaces.Dict:
    """``space`` with ``task_id`` replaced by ``Discrete(max(num_labels, 1))``.

    Every task of a sequence then presents the same observation space to one SB3 policy (a
    family's own ``task_id`` range differs between Sudoku and ARCGen, and SB3 refuses an env
    whose spaces differ from the model's).
    """
    entries = dict(space.spaces)
    entries["task_id"] = spaces.Discrete(max(int(num_labels), 1))
    return spaces.Dict(entries)


_ABSENT = object()


def _unwrapped_attr(env: Any, name: str) -> Any:
    """``name`` on ``env`` or, through Gymnasium vector wrappers, on the env they wrap
    (``_ABSENT`` when neither has it; ``None`` is a value)."""
    found = getattr(env, name, _ABSENT)
    if found is _ABSENT and hasattr(env, "unwrapped"):
        found = getattr(env.unwrapped, name, _ABSENT)
    return found


class SB3VecEnv(VecEnv):
    """One batched trmgym env as an SB3 ``VecEnv`` of ``env.num_envs`` rows.

    Args:
        env: a Gymnasium ``VectorEnv`` with ``autoreset_mode=SAME_STEP`` (trmgym's native env,
            possibly under vector wrappers such as a plugin's ``wrap_env``).
        seed: the seed of the first :meth:`reset` (an int seeds the batch's one generator, as
            ``env.reset(seed=seed)``; with ``num_envs=1`` that is exactly a single env's
            ``reset(seed=seed)``). ``None``: unseeded. :meth:`seed` sets it again.
        options: base reset options given to every :meth:`reset` (e.g. a task's
            ``{"task_id": 3}``).
        task_label: when given, every observation's ``task_id`` is replaced by this int and the
            observation space's ``task_id`` becomes ``Discrete(num_labels)``
            (:func:`labelled_observation_space`): one observation space for every task of a
            sequence.
        num_labels: the number of labels (tasks); required with ``task_label``.
        on_episodes_end: called as ``on_episodes_end(rows, solved, cell_accuracy, steps)``
            (``[k]`` arrays) after every step in which ``k > 0`` puzzles ended.

    Raises:
        ValueError: ``env`` does not autoreset in the same step, or ``task_label`` is outside
            ``0..num_labels-1``.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        *,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
        task_label: int | None = None,
        num_labels: int | None = None,
        on_episodes_end: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]
        | None = None,
    ) -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "SB3VecEnv needs a vector env made with autoreset_mode='same_step' (SB3 expects "
                f"the next puzzle's observation in the step that ends one), got {mode!r}"
            )
        observation_space = env.single_observation_space
        if task_label is not None:
            if num_labels is None or not 0 <= int(task_label) < int(num_labels):
                raise ValueError(
                    f"task_label must lie in 0..num_labels-1, got {task_label!r} with "
                    f"num_labels={num_labels!r}"
                )
            observation_space = labelled_observation_space(observation_space, int(num_labels))
        self.env = env  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(env.num_envs, observation_space, env.single_action_space)
        self.task_label = None if task_label is None else int(task_label)
        self.base_options = dict(options) if options else None
        self.on_episodes_end = on_episodes_end
        self._batch_seed = seed
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------------------ stepping
    def _label(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.task_label is not None:
            obs = {**obs, "task_id": np.full(self.num_envs, self.task_label, dtype=np.int64)}
        return obs

    def reset(self) -> dict[str, np.ndarray]:
        """New puzzles in every row; seeded by the constructor's (or :meth:`seed`'s) seed the
        first time after it was given, continuing the env's stream afterwards.

        Options given with SB3's ``set_options`` become the native env's per-row options
        (``PuzzleVectorEnv.set_options``): unlike a ``DummyVecEnv``'s, they stay in force for
        the rows' later autoresets. ``reset_infos`` holds each row's per-puzzle info."""
        options = self.base_options
        if any(self._options):  # SB3's set_options: one mapping per row
            per_row = [dict(o) if o else None for o in self._options]
            self.env.unwrapped.set_options(per_row)
        obs, info = self.env.reset(seed=self._batch_seed, options=options)
        self._batch_seed = None
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = self._per_row(info)[1]
        return self._label(obs)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next :meth:`reset`: an int seeds the batch's one generator (the native env
        draws every row from it), so the rows' puzzles differ from ``B`` single envs seeded
        ``seed + i``. Returns SB3's per-row list ``[seed + i]`` for reference."""
        self._batch_seed = seed
        if seed is None:
            return [None] * self.num_envs
        return [seed + i for i in range(self.num_envs)]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]]:
        if self._actions is None:
            raise RuntimeError("step_wait() needs a step_async(actions) first")
        actions, self._actions = self._actions, None
        obs, reward, terminated, truncated, info = self.env.step(actions)
        dones = np.asarray(terminated) | np.asarray(truncated)
        infos = self._row_infos(info, np.asarray(terminated), np.asarray(truncated), dones)
        return self._label(obs), np.asarray(reward, dtype=np.float32), dones, infos

    def _row_infos(
        self,
        info: Mapping[str, Any],
        terminated: np.ndarray,
        truncated: np.ndarray,
        dones: np.ndarray,
    ) -> list[dict[str, Any]]:
        """One info dict per row (SB3's convention) from the native info columns."""
        keys, infos = self._per_row(info)
        finished = np.flatnonzero(dones)
        if finished.size == 0:
            return infos
        final_obs, final_info = info.get("final_obs"), info.get("final_info")
        if final_obs is None or final_info is None:
            raise RuntimeError(
                "a puzzle ended but the env's info has no final_obs/final_info; SB3VecEnv needs "
                "autoreset_mode='same_step'"
            )
        for row in finished.tolist():
            own = final_info[row]
            for key in keys:  # the finished puzzle's values, where the env reports them
                if key in own:
                    infos[row][key] = own[key]
            terminal = dict(final_obs[row])
            if self.task_label is not None:
                terminal["task_id"] = np.int64(self.task_label)
            infos[row]["terminal_observation"] = terminal
            infos[row]["TimeLimit.truncated"] = bool(truncated[row] and not terminated[row])
        if self.on_episodes_end is not None:
            self.on_episodes_end(
                finished,
                np.array([bool(final_info[r]["solved"]) for r in finished]),
                np.array([float(final_info[r]["cell_accuracy"]) for r in finished]),
                np.array([int(final_info[r]["steps"]) for r in finished], dtype=np.int64),
            )
        return infos

    def _per_row(self, info: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """The per-puzzle numeric columns of a native info, as one dict per row."""
        n = self.num_envs
        columns = {
            key: value.tolist()
            for key, value in info.items()
            if not key.startswith("_")
            and key not in _SKIPPED
            and isinstance(value, np.ndarray)
            and value.shape == (n,)
            and value.dtype.kind in "biuf"
        }
        keys = list(columns)
        if not keys:
            return keys, [{} for _ in range(n)]
        return keys, [dict(zip(keys, row)) for row in zip(*columns.values())]

    def close(self) -> None:
        self.env.close()

    # ----------------------------------------------------------------- attributes and methods
    def _rows(self, indices: None | int | Iterable[int]) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        """The batched env's attribute, once per requested row (one env holds every row).

        Raises:
            AttributeError: the env (or the env its wrappers wrap) has no such attribute —
                how SB3's ``has_attr`` (and MaskablePPO's masking check) learns it is absent.
        """
        value = _unwrapped_attr(self.env, attr_name)
        if value is _ABSENT:
            raise AttributeError(f"{type(self.env.unwrapped).__name__} has no {attr_name!r}")
        return [value for _ in self._rows(indices)]

    def set_attr(
        self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None
    ) -> None:
        """Set an attribute of the batched env (all rows share it, so ``indices`` must be all
        rows or ``None``).

        Raises:
            ValueError: ``indices`` names only some rows.
        """
        if indices is not None and sorted(self._rows(indices)) != list(range(self.num_envs)):
            raise ValueError(
                f"set_attr({attr_name!r}) sets the one batched env's attribute; give "
                "indices=None (every row)"
            )
        setattr(self.env.unwrapped, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: None | int | Iterable[int] = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call the batched env's method once; a result with one entry per row (an array of
        leading size ``num_envs``, e.g. ``action_masks() -> [B, n]``) is split into rows,
        anything else is repeated for every requested row.

        Raises:
            AttributeError: the env has no such method.
        """
        method = _unwrapped_attr(self.env, method_name)
        if method is _ABSENT:
            raise AttributeError(f"{type(self.env.unwrapped).__name__} has no {method_name!r}")
        result = method(*method_args, **method_kwargs)
        rows = self._rows(indices)
        if isinstance(result, np.ndarray) and result.ndim >= 1 and len(result) == self.num_envs:
            return [result[r] for r in rows]
        return [result for _ in rows]

    def action_masks(self) -> np.ndarray:
        """``[B, n]`` bool: the env's valid actions per row (for MaskablePPO).

        Raises:
            AttributeError: the env has no ``action_masks``.
        """
        return np.asarray(self.env_method(ACTION_MASKS))

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: None | int | Iterable[int] = None
    ) -> list[bool]:
        """Whether the batched env sits under a wrapper of ``wrapper_class`` (one answer for
        every row). Single-env wrappers such as SB3's ``Monitor`` never wrap it: use SB3's
        ``VecMonitor`` around this env for episode statistics."""
        wrapped, env = False, self.env
        while env is not None:
            if isinstance(env, wrapper_class):
                wrapped = True
                break
            env = getattr(env, "env", None)
        return [wrapped for _ in self._rows(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.env.render() if self.env.render_mode == "rgb_array" else None
        return list(frames) if frames is not None else [None] * self.num_envs
