"""Checkpoint state survives a weights-only save and load with its types and shapes."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from trmgym import checkpoint


def test_numpy_scalars_and_zero_d_arrays_round_trip(tmp_path: Path) -> None:
    state = {
        "f64": np.float64(0.25),  # a subclass of float: must still become a plain float
        "f32": np.float32(1.5),
        "i64": np.int64(7),
        "flag": np.bool_(True),
        "zero_d": np.array(3.5),
        "matrix": np.arange(6, dtype=np.int16).reshape(2, 3)[:, ::2],  # not contiguous
        "nested": [np.float64(2.0), (np.array(1), {"x": np.zeros((0, 4))})],
    }
    path = checkpoint.save_atomic(state, tmp_path)
    torch.load(path, weights_only=True)  # refused a numpy float scalar before
    back = checkpoint.load(path)
    assert type(back["f64"]) is float and back["f64"] == 0.25
    assert type(back["f32"]) is float and back["f32"] == 1.5
    assert type(back["i64"]) is int and back["i64"] == 7
    assert type(back["flag"]) is bool and back["flag"] is True
    assert back["zero_d"].shape == () and back["zero_d"] == 3.5
    np.testing.assert_array_equal(back["matrix"], [[0, 2], [3, 5]])
    assert back["matrix"].dtype == np.int16
    assert back["nested"][0] == 2.0 and back["nested"][1][0].shape == ()
    assert back["nested"][1][1]["x"].shape == (0, 4)


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-hard-links"])
def test_last_pt_is_present_at_every_moment_of_a_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    """A watcher (or a kill) between two file operations of a save always finds a complete
    ``last.pt``; afterwards ``previous.pt`` holds the older state. CI once saw ``last.pt`` vanish
    for a moment: the old save renamed it to ``previous.pt`` before renaming the new one in."""
    checkpoint.save_atomic({"step": 1}, tmp_path)
    last = tmp_path / checkpoint.LAST
    seen: list[int] = []

    def check(real):  # every file operation of the save sees a readable last.pt, before and after
        def wrapped(*args, **kwargs):
            seen.append(checkpoint.load(last)["step"])
            out = real(*args, **kwargs)
            seen.append(checkpoint.load(last)["step"])
            return out

        return wrapped

    monkeypatch.setattr(checkpoint.os, "replace", check(os.replace))
    if links:
        monkeypatch.setattr(checkpoint.os, "link", check(os.link))
    else:

        def no_links(*args, **kwargs):
            raise OSError(errno.EPERM, "no hard links here")

        monkeypatch.setattr(checkpoint.os, "link", no_links)
        monkeypatch.setattr(checkpoint.shutil, "copyfile", check(shutil.copyfile))
    checkpoint.save_atomic({"step": 2}, tmp_path)
    monkeypatch.undo()
    assert seen[0] == 1 and seen[-1] == 2 and len(seen) >= 6  # link/copy, replace x2
    assert checkpoint.load(last) == {"step": 2}
    assert checkpoint.load(tmp_path / checkpoint.PREVIOUS) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "previous.pt"]
    checkpoint.save_atomic({"step": 3}, tmp_path)  # a third save: previous.pt is replaced too
    assert checkpoint.load(tmp_path / checkpoint.PREVIOUS) == {"step": 2}
    assert checkpoint.load(last) == {"step": 3}


def test_a_start_removes_what_a_killed_save_left_and_nothing_else(tmp_path: Path) -> None:
    checkpoint.save_atomic({"step": 1}, tmp_path)
    checkpoint.save_atomic({"step": 2}, tmp_path)
    stale = [tmp_path / ".ckpt-abc.tmp", tmp_path / ".previous-def.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp").write_text("not ours")
    assert checkpoint.remove_temporaries(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "notes.tmp", "previous.pt"]
    assert checkpoint.load_latest(tmp_path) == {"step": 2}
