"""Checkpoint state survives a weights-only save and load with its types and shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
