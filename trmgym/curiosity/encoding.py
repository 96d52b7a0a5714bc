"""What a curiosity module sees: chosen keys of a Dict observation, one-hot encoded.

Every bonus reads a batch of Dict observations (``{key: [B, ...] ints}``) through an
:class:`ObservationEncoder`. It keeps the keys named in ``obs_keys`` — by default the grid-like
keys (every 2-D integer ``Box``, e.g. ``grid`` and ``answer``) and ``position`` when the space has
one — and one-hot encodes each token over its key's value range, so an ``H x W`` grid over ``V``
tokens becomes ``H * W * V`` features. A network's first linear layer over this encoding is a
learned per-cell token embedding; the count bonus projects the same encoding (SimHash) or hashes
the raw bytes of the kept keys (exact counts).

:class:`ActionEncoder` does the same for actions (needed by the forward/inverse models of
:class:`~trmgym.curiosity.icm.ForwardModelSurprise`): each discrete factor of the action
(a ``Discrete``, every entry of a ``MultiDiscrete``/``MultiBinary``/integer ``Box``, recursively
through ``Dict``) is one categorical variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

#: kept by default besides the 2-D integer Box keys, when the space has it
POSITION_KEY = "position"


class _Field(NamedTuple):
    """One categorical block: ``shape`` entries, each one of ``num_values`` from ``low``."""

    shape: tuple[int, ...]
    low: int
    num_values: int


def _categorical_field(space: gym.Space, label: str) -> _Field:
    """The categorical layout of a discrete space, or TypeError naming ``label``."""
    allowed = "Discrete, MultiBinary, or an integer Box / MultiDiscrete with finite bounds"
    if isinstance(space, gym.spaces.Discrete):
        return _Field((), int(space.start), int(space.n))
    if isinstance(space, gym.spaces.MultiBinary):
        return _Field(tuple(space.shape), 0, 2)
    if isinstance(space, gym.spaces.MultiDiscrete):
        low = np.asarray(space.start)
        return _Field(tuple(space.shape), int(low.min()), int((low + space.nvec).max() - low.min()))
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.integer):
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise TypeError(f"{label} must have finite bounds to be one-hot encoded")
        low, high = int(np.min(space.low)), int(np.max(space.high))
        return _Field(tuple(space.shape), low, high - low + 1)
    raise TypeError(f"{label} must be {allowed}; got {space}")


def _as_int_array(value: Any, label: str, shape: tuple[int, ...], field: _Field) -> np.ndarray:
    """``value`` as an int64 array ``[B, *shape]`` in range, else TypeError/ValueError."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise TypeError(
            f"{label} must hold integers (any int or bool dtype), got dtype {array.dtype}"
        )
    if array.ndim != len(shape) + 1 or array.shape[1:] != shape:
        want = ", ".join(["B", *map(str, shape)])
        raise ValueError(f"{label} must have shape [{want}], got {array.shape}")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < field.low or array.max() >= field.low + field.num_values):
        raise ValueError(
            f"{label} values must lie in {field.low}..{field.low + field.num_values - 1}, "
            f"got {array.min()}..{array.max()}"
        )
    return array


def default_obs_keys(observation_space: gym.spaces.Dict) -> list[str]:
    """The grid-like keys of ``observation_space``: 2-D integer ``Box`` keys, plus ``position``."""
    return [
        key
        for key, space in observation_space.spaces.items()
        if key == POSITION_KEY
        or (
            isinstance(space, gym.spaces.Box)
            and np.issubdtype(space.dtype, np.integer)
            and len(space.shape) == 2
        )
    ]


class ObservationEncoder:
    """Select keys of a Dict observation batch and one-hot encode their tokens.

    Args:
        observation_space: the single (unbatched) env's ``gymnasium.spaces.Dict``.
        obs_keys: keys to read, in this order; ``None`` means :func:`default_obs_keys`.

    Raises:
        TypeError: the space is not a Dict, or a chosen key's space is not discrete.
        ValueError: ``obs_keys`` is empty, repeats a key or names a key the space lacks
            (the error lists the allowed keys).
    """

    def __init__(
        self, observation_space: gym.spaces.Dict, obs_keys: Sequence[str] | None = None
    ) -> None:
        if not isinstance(observation_space, gym.spaces.Dict):
            raise TypeError(
                "observation_space must be a gymnasium.spaces.Dict (trmgym's grid observations), "
                f"got {type(observation_space).__name__}"
            )
        allowed = list(observation_space.spaces)
        keys = default_obs_keys(observation_space) if obs_keys is None else obs_keys
        if isinstance(keys, str) or not isinstance(keys, Sequence):
            raise TypeError(f"obs_keys must be a list of keys from {allowed}, got {obs_keys!r}")
        keys = list(keys)
        if not keys:
            raise ValueError(
                f"obs_keys must name at least one key of the observation; allowed: {allowed}"
            )
        unknown = [key for key in keys if key not in observation_space.spaces]
        if unknown:
            raise ValueError(f"obs_keys: unknown key {unknown[0]!r}; allowed: {allowed}")
        if len(set(keys)) != len(keys):
            raise ValueError(f"obs_keys must not repeat a key, got {keys}")
        self.obs_keys = keys
        self.fields = {
            key: _categorical_field(observation_space[key], f"observation key {key!r}")
            for key in keys
        }
        self.num_features = sum(
            int(np.prod(f.shape, dtype=np.int64)) * f.num_values for f in self.fields.values()
        )

    def select(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The chosen keys of a batch as checked int64 arrays ``{key: [B, *shape]}``.

        Raises:
            TypeError: ``obs`` is not a mapping, or a key holds non-integers.
            ValueError: a key is missing, has the wrong shape, values out of range, or the
                keys disagree on the batch size ``B``.
        """
        if not isinstance(obs, Mapping):
            raise TypeError(f"obs must be a dict of [B, ...] arrays, got {type(obs).__name__}")
        selected: dict[str, np.ndarray] = {}
        for key, field in self.fields.items():
            if key not in obs:
                raise ValueError(f"obs is missing key {key!r} (obs_keys={self.obs_keys})")
            selected[key] = _as_int_array(obs[key], f"obs[{key!r}]", field.shape, field)
        sizes = {len(array) for array in selected.values()}
        if len(sizes) != 1:
            raise ValueError(f"obs keys {self.obs_keys} disagree on the batch size: {sizes}")
        return selected

    def encode(self, obs: Mapping[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
        """One-hot features of a batch: float32 ``[B, num_features]`` (0/1 entries)."""
        parts = []
        for key, array in self.select(obs).items():
            field = self.fields[key]
            tokens = torch.as_tensor(array - field.low, device=device)
            parts.append(F.one_hot(tokens, field.num_values).reshape(len(array), -1))
        return torch.cat(parts, dim=1).to(torch.float32)

    def row_bytes(self, obs: Mapping[str, Any]) -> list[bytes]:
        """The raw bytes of each row's chosen keys (int64, C order), for exact hashing."""
        selected = self.select(obs)
        rows = np.concatenate(
            [array.reshape(len(array), -1) for array in selected.values()], axis=1
        )
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        return [row.tobytes() for row in rows]

    def check_space(self, observation_space: gym.Space, label: str = "env") -> None:
        """ValueError unless ``observation_space`` encodes exactly as the one this was built on."""
        if not isinstance(observation_space, gym.spaces.Dict):
            raise TypeError(
                f"{label}.observation_space must be a gymnasium.spaces.Dict, "
                f"got {type(observation_space).__name__}"
            )
        for key, field in self.fields.items():
            if key not in observation_space.spaces:
                raise ValueError(
                    f"{label}.observation_space lacks key {key!r} the bonus reads "
                    f"(obs_keys={self.obs_keys})"
                )
            theirs = _categorical_field(observation_space[key], f"observation key {key!r}")
            if theirs != field:
                raise ValueError(
                    f"{label}.observation_space[{key!r}] is {observation_space[key]}, but the "
                    f"bonus was built for shape {field.shape} with values "
                    f"{field.low}..{field.low + field.num_values - 1}"
                )


def take_rows(obs: Mapping[str, Any], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``rows`` (an index or boolean mask) of every key of a Dict batch."""
    return {key: np.asarray(value)[rows] for key, value in obs.items()}


def concat_batches(batches: Sequence[Any]) -> Any:
    """Concatenate batches along axis 0: arrays, or (nested) dicts of arrays key by key."""
    first = batches[0]
    if isinstance(first, Mapping):
        return {key: concat_batches([batch[key] for batch in batches]) for key in first}
    return np.concatenate([np.asarray(batch) for batch in batches], axis=0)


def add_batch_axis(value: Any) -> Any:
    """A single observation or action as a batch of one (dicts key by key)."""
    if isinstance(value, Mapping):
        return {key: add_batch_axis(item) for key, item in value.items()}
    return np.asarray(value)[None]


class ActionEncoder:
    """Discrete actions as categorical factors: one-hot inputs and inverse-model targets.

    Args:
        action_space: the single env's action space: Discrete, MultiDiscrete, MultiBinary, an
            integer Box with finite bounds, or a Dict of those (e.g. trmgym's grid action
            ``Dict(answer=Box(0, V-1, (H, W)), halt=Discrete(2))``).

    Attributes:
        segments: ``(num_factors, num_classes)`` per leaf space, in encoding order.
        num_features: width of :meth:`one_hot`, ``sum(num_factors * num_classes)``.

    Raises:
        TypeError: a continuous (float) action space, or any other unsupported space.
    """

    def __init__(self, action_space: gym.Space) -> None:
        self.leaves: list[tuple[tuple[Any, ...], _Field]] = []
        self._collect(action_space, ())
        self.segments = [
            (int(np.prod(field.shape, dtype=np.int64)), field.num_values)
            for _, field in self.leaves
        ]
        self.num_features = sum(factors * classes for factors, classes in self.segments)

    def _collect(self, space: gym.Space, path: tuple[Any, ...]) -> None:
        if isinstance(space, gym.spaces.Dict):
            for key, sub in space.spaces.items():
                self._collect(sub, (*path, key))
        else:
            label = "action_space" + "".join(f"[{p!r}]" for p in path)
            self.leaves.append((path, _categorical_field(space, label)))

    def targets(self, actions: Any) -> list[np.ndarray]:
        """Class indices per leaf: int64 ``[B, num_factors]`` each (values ``0..classes-1``).

        Raises:
            TypeError: non-integer actions, or a dict action for a non-dict space (or back).
            ValueError: wrong shape, out-of-range values, or leaves disagreeing on ``B``.
        """
        out = []
        for path, field in self.leaves:
            value = actions
            for key in path:
                if not isinstance(value, Mapping) or key not in value:
                    raise TypeError(
                        f"actions must be a dict like the action space; missing key {key!r}"
                    )
                value = value[key]
            label = "actions" + "".join(f"[{p!r}]" for p in path)
            array = _as_int_array(value, label, field.shape, field)
            out.append((array - field.low).reshape(len(array), -1))
        if len({len(t) for t in out}) != 1:
            raise ValueError("action leaves disagree on the batch size")
        return out

    def one_hot(self, actions: Any, device: torch.device | str = "cpu") -> torch.Tensor:
        """One-hot float32 ``[B, num_features]`` of a batch of actions."""
        parts = [
            F.one_hot(torch.as_tensor(target, device=device), classes).reshape(len(target), -1)
            for target, (_, classes) in zip(self.targets(actions), self.segments)
        ]
        return torch.cat(parts, dim=1).to(torch.float32)

    def cross_entropy(self, logits: torch.Tensor, actions: Any) -> torch.Tensor:
        """Mean cross-entropy over every factor of every row: the inverse-model loss."""
        losses, count = [], 0
        start = 0
        for target, (factors, classes) in zip(self.targets(actions), self.segments):
            block = logits[:, start : start + factors * classes].reshape(-1, classes)
            start += factors * classes
            labels = torch.as_tensor(target, device=logits.device).reshape(-1)
            losses.append(F.cross_entropy(block, labels, reduction="sum"))
            count += labels.numel()
        return torch.stack(losses).sum() / count
