"""Forward transfer of a run against a scratch reference (trmgym.results.forward_transfer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trmgym.results import check_reference, forward_transfer

RUN = {
    "sequence": ["a", "b"],
    "strategy": "naive",
    "seed": 0,
    "accuracy_matrix": [[0.8, 0.2], [0.5, 0.9]],
    "random_init_accuracy": [0.0, 0.1],
    "curves": [[0.4, 0.8], [0.6, 0.9]],
    "metrics": {},
}
SCRATCH = {
    **RUN,
    "strategy": "scratch",
    "accuracy_matrix": [[0.6, 0.0], [0.0, 0.6]],
    "random_init_accuracy": [0.0, 0.0],
    "curves": [[0.2, 0.6], [0.2, 0.6]],
}


def test_forward_transfer_by_hand() -> None:
    # Curves with their starting points: run a = [0, .4, .8] (b_0), b = [.2, .6, .9] (R[0][1]);
    # reference [0, .2, .6] for both. Trapezoid areas over [0, 1]: .4, .575 and .25, so
    # FT = (.4 - .25) / .75 = .2 and (.575 - .25) / .75 = .4333.
    transfer = forward_transfer(RUN, SCRATCH)
    assert transfer["ft_per_task"] == pytest.approx([0.2, 0.325 / 0.75])
    assert transfer["ft"] == pytest.approx((0.2 + 0.325 / 0.75) / 2)
    assert transfer["reference"] is None


def test_a_run_against_itself_has_zero_transfer_only_when_it_starts_alike() -> None:
    same = {**SCRATCH, "accuracy_matrix": [[0.6, 0.0], [0.0, 0.6]]}
    assert forward_transfer(same, SCRATCH)["ft_per_task"] == pytest.approx([0.0, 0.0])


def test_reference_from_a_run_directory(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(SCRATCH))
    transfer = forward_transfer(RUN, tmp_path)
    assert transfer["reference"] == str(tmp_path / "results.json")
    assert transfer["ft"] == pytest.approx(forward_transfer(RUN, SCRATCH)["ft"])


@pytest.mark.parametrize(
    ("reference", "match"),
    [
        (
            {**SCRATCH, "strategy": "replay"},
            "must be a run with strategy=scratch.*got strategy 'replay'",
        ),
        ({**SCRATCH, "sequence": ["a", "c"]}, r"reference's tasks \['a', 'c'\] differ"),
        (
            {**SCRATCH, "curves": [[], [0.1]]},
            "needs 'curves' with at least one evaluation per task",
        ),
    ],
)
def test_bad_references_are_named(reference: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forward_transfer(RUN, reference)


def test_missing_reference_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such results file"):
        check_reference(tmp_path / "nowhere", ["a", "b"])
