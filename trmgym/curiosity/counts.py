"""Count-based exploration with hashed states (Tang et al. 2017, "#Exploration: A Study of
Count-Based Exploration for Deep Reinforcement Learning").

A state ``s`` is mapped to a discrete code ``phi(s)`` and rewarded ``beta / sqrt(n(phi(s)))``,
``n`` the number of times that code has been visited. Two codes:

- ``hash="simhash"`` (the paper's static hashing): ``phi(s) = sgn(A g(s))`` with ``A`` a
  ``bits x D`` matrix of i.i.d. standard normal entries drawn once from a seeded
  ``numpy`` generator, and ``g(s)`` the one-hot token encoding of the chosen keys
  (:mod:`trmgym.curiosity.encoding`). Identical observations always collide; observations that
  differ in many cells get different codes with high probability (SimHash preserves angles:
  each bit differs with probability ``angle / pi``). Observations that differ in one cell of
  many are close in angle and often share a code: more ``bits`` make the counts finer.
- ``hash="exact"``: ``phi(s)`` is a 128-bit BLAKE2b digest of the raw int64 bytes of the chosen
  keys — an exact count for small discrete observation sets (a digest collision is
  astronomically unlikely).

**When counts change**: on every :meth:`CountBonus.bonus` call of a non-frozen bonus, for the
rows in ``mask`` — the state reached (``next_obs``, else ``obs``) is counted, then rated. So a
state's first visit earns ``beta``, its ``n``-th ``beta / sqrt(n)``. A batch is counted as a
whole before any row is rated: a code appearing ``k`` times in one batch gets ``k`` added and
every one of those rows is rated with the new total. The intrinsic-reward wrappers call
``bonus`` once per training step, so counts are visits on training steps; a frozen bonus
(evaluation) rates with the counts it has and counts nothing. :meth:`CountBonus.update` has
nothing to train and leaves the counts alone.

**Episodic counts** (``episodic=True``): each env row keeps its own table, emptied when its episode
ends (:meth:`CountBonus.end_episodes`, called by the wrappers), so the bonus rewards states new
*within the episode*. This is the count to use when every episode is a new procedurally generated
level — a new maze — where a lifelong count of whole observations never repeats and says nothing:
e.g. ``obs_keys=["position"]`` on a walk-mode maze pays ``beta`` for each cell the agent reaches
for the first time in the episode and ``beta / sqrt(n)`` for its ``n``-th visit (the start cell
counts as visited once, :meth:`CountBonus.start_episodes`) (episodic
novelty as in Badia et al. 2020, "Never Give Up", and Raileanu & Rocktäschel 2020, RIDE).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from trmgym.curiosity.base import (
    IntrinsicBonus,
    check_bool,
    check_mask,
    nonnegative_float,
    positive_int,
)
from trmgym.curiosity.encoding import ObservationEncoder

HASHES = ("simhash", "exact")
#: bytes of an exact-mode code
DIGEST_SIZE = 16


class CountBonus(IntrinsicBonus):
    """``beta / sqrt(n(phi(s)))`` with SimHash or exact state codes.

    Args:
        observation_space: the single env's ``gymnasium.spaces.Dict``.
        obs_keys: keys to read (default: the grid-like keys).
        beta: bonus scale (``> 0``); the bonus of a first visit.
        hash: ``"simhash"`` or ``"exact"`` (see the module docstring).
        bits: SimHash code length ``k`` (``>= 1``; the paper uses 16..512). Ignored by ``"exact"``.
        seed: seeds the SimHash projection (an int ``>= 0``).
        frozen: see :class:`~trmgym.curiosity.base.IntrinsicBonus`.
        episodic: count per env row within the current episode (see the module docstring)
            instead of over the whole run.

    Raises:
        ValueError: ``beta <= 0``, ``bits <= 0``, an unknown ``hash`` or ``obs_keys`` entry (each
            error names the argument and the allowed values).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        *,
        obs_keys: Sequence[str] | None = None,
        beta: float = 1.0,
        hash: str = "simhash",  # noqa: A002 - the paper's term, and the config key
        bits: int = 32,
        seed: int = 0,
        frozen: bool = False,
        episodic: bool = False,
    ) -> None:
        super().__init__(frozen=frozen)
        self.episodic = check_bool(episodic, "episodic")
        if hash not in HASHES:
            raise ValueError(f"hash must be one of {list(HASHES)}, got {hash!r}")
        self.encoder = ObservationEncoder(observation_space, obs_keys)
        self.beta = nonnegative_float(beta, "beta", positive=True)
        self.hash = hash
        self.bits = positive_int(bits, "bits")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.projection = (
            np.random.default_rng(seed).standard_normal((self.bits, self.encoder.num_features))
            if hash == "simhash"
            else None
        )
        #: lifelong visits per code (``episodic=False``)
        self.counts: dict[bytes, int] = {}
        #: visits per code in each row's current episode (``episodic=True``; sized on first use)
        self.episode_counts: list[dict[bytes, int]] = []

    def codes(self, obs: Mapping[str, Any]) -> list[bytes]:
        """The code ``phi(s)`` of each row, as bytes (``ceil(bits / 8)`` or 16 of them)."""
        if self.projection is None:
            return [
                hashlib.blake2b(row, digest_size=DIGEST_SIZE).digest()
                for row in self.encoder.row_bytes(obs)
            ]
        features = self.encoder.encode(obs).numpy().astype(np.float64)
        signs = features @ self.projection.T > 0
        return [row.tobytes() for row in np.packbits(signs, axis=1)]

    @property
    def per_row_state(self) -> bool:
        """Episodic counts keep one table per env row."""
        return self.episodic

    def _tables(self, batch_size: int) -> list[dict[bytes, int]]:
        """The count table each row reads: one shared table, or each row's episode table."""
        if not self.episodic:
            return [self.counts] * batch_size
        if not self.episode_counts:
            self.episode_counts = [{} for _ in range(batch_size)]
        if len(self.episode_counts) != batch_size:
            raise ValueError(
                f"an episodic CountBonus counts {len(self.episode_counts)} env rows; got a batch "
                f"of {batch_size} (build one bonus per vector env)"
            )
        return self.episode_counts

    def count(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Visits so far of each row's code (in the row's episode when episodic): int64 ``[B]``
        (changes nothing)."""
        codes = self.codes(obs)
        tables = self._tables(len(codes))
        return np.array([t.get(c, 0) for t, c in zip(tables, codes)], dtype=np.int64)

    def start_episodes(self, obs: Mapping[str, Any], rows: np.ndarray) -> None:
        """Count each starting row's first state in its (emptied) episode table, so returning to
        the start is a second visit; a lifelong or frozen count ignores it."""
        if not self.episodic or self.frozen:
            return
        codes = self.codes(obs)
        tables = self._tables(len(codes))
        for row in np.flatnonzero(check_mask(rows, len(codes))):
            tables[row][codes[row]] = tables[row].get(codes[row], 0) + 1

    def end_episodes(self, rows: np.ndarray) -> None:
        """Empty the episode tables of ``rows`` (bool ``[B]``); a lifelong count ignores it."""
        if not self.episodic or not self.episode_counts:
            return
        for row in np.flatnonzero(check_mask(rows, len(self.episode_counts))):
            self.episode_counts[row] = {}

    def bonus(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """``beta / sqrt(n)`` ``[B]`` for the state reached, counting it first unless frozen.

        A frozen bonus rates a never-seen code ``beta`` (as if this were its first visit).
        """
        codes = self.codes(obs if next_obs is None else next_obs)
        mask = check_mask(mask, len(codes))
        tables = self._tables(len(codes))
        kept = [(table, code) for table, code, keep in zip(tables, codes, mask) if keep]
        if not self.frozen:
            for table, code in kept:
                table[code] = table.get(code, 0) + 1
        visits = np.array([max(t.get(c, 0), 1) for t, c in kept], dtype=np.float64)
        out = np.zeros(len(codes))
        out[mask] = self.beta / np.sqrt(visits)
        return out

    def update(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Nothing to train (counts change in :meth:`bonus`); reports the table's size."""
        self._refuse_if_frozen()
        if self.episodic:
            return {"train/distinct_codes": float(np.mean([len(t) for t in self.episode_counts]))}
        return {"train/distinct_codes": float(len(self.counts))}

    def _width(self) -> int:
        return DIGEST_SIZE if self.projection is None else (self.bits + 7) // 8

    def _table_state(self, table: dict[bytes, int]) -> dict[str, np.ndarray]:
        keys = np.frombuffer(b"".join(table), dtype=np.uint8).reshape(-1, self._width())
        return {
            "codes": keys.copy(),
            "counts": np.fromiter(table.values(), dtype=np.int64, count=len(table)),
        }

    @staticmethod
    def _table(state: Mapping[str, Any]) -> dict[bytes, int]:
        codes = np.asarray(state["codes"], dtype=np.uint8)
        return {row.tobytes(): int(n) for row, n in zip(codes, np.asarray(state["counts"]))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "episodic": self.episodic,
            "projection": None if self.projection is None else self.projection.copy(),
            **self._table_state(self.counts),
            "episodes": [self._table_state(t) for t in self.episode_counts],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["hash"] != self.hash:
            raise ValueError(
                f"state was saved with hash={state['hash']!r}, this bonus uses {self.hash!r}"
            )
        if self.projection is not None:
            projection = np.asarray(state["projection"], dtype=np.float64)
            if projection.shape != self.projection.shape:
                raise ValueError(
                    f"state's projection has shape {projection.shape}, expected {self.projection.shape}"
                )
            self.projection = projection.copy()
        if bool(state.get("episodic", False)) != self.episodic:
            raise ValueError(
                f"state was saved with episodic={state.get('episodic', False)}, this bonus uses "
                f"episodic={self.episodic}"
            )
        self.counts = self._table(state)
        self.episode_counts = [self._table(t) for t in state.get("episodes", [])]
