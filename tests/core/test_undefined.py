"""Undefined is not zero: null metrics from metrics.summarize to results.json, tables and reports."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from trmgym.logging import matrix_table, metrics_table
from trmgym.metrics import summarize
from trmgym.report import aggregate_table, main, write_report
from trmgym.results import (
    aggregate,
    forward_transfer,
    json_ready,
    load_results,
    summary_stats,
    write_results,
)

REASON = (
    "n/a: BWT and forgetting need at least 2 tasks; "
    "FWT needs at least 2 tasks and random-init accuracies"
)


def one_task_results(**changes: object) -> dict:
    """A finished one-task run as experiment.py writes it: BWT, FWT, forgetting undefined."""
    summary = summarize([[0.75]], [0.25], reasoning_steps=[3.0])
    results = {
        "experiment": "solo",
        "sequence": ["maze"],
        "strategy": "naive",
        "seed": 0,
        "accuracy_matrix": [[0.75]],
        "cell_accuracy_matrix": [[0.9]],
        "reasoning_steps_matrix": [[3.0]],
        "random_init_accuracy": [0.25],
        "curves": [[0.5, 0.75]],
        "metrics": {k: v for k, v in summary.items() if k != "forgetting"},
        "forgetting": summary["forgetting"],
        "settings": {"train_steps": 20, "eval_every": 10},
        "tasks": [{"name": "maze", "train_steps": None}],
    }
    results.update(changes)
    return results


def rendered(table: Table) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(table)
    return buffer.getvalue()


def words(table: Table) -> str:
    """The table's text without borders, whitespace collapsed (captions may wrap)."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", rendered(table)).split())


def test_results_json_carries_null_never_nan_or_zero(tmp_path: Path) -> None:
    results = one_task_results()
    assert results["metrics"]["bwt"] is None and results["metrics"]["avg_forgetting"] is None
    # a NaN or a numpy value that slipped in is written as null / a plain number
    results["wall_time_s"] = np.float64(2.5)
    results["extra"] = {"nan": float("nan"), "inf": -np.inf, "array": np.array([0.5, np.nan])}
    path = write_results(tmp_path, results)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert '"bwt": null' in text and '"fwt": null' in text and '"avg_forgetting": null' in text
    saved = load_results(tmp_path)
    assert saved["metrics"]["bwt"] is None and saved["metrics"]["fwt"] is None
    assert saved["metrics"]["avg_accuracy"] == pytest.approx(0.75)
    assert saved["extra"] == {"nan": None, "inf": None, "array": [0.5, None]}
    assert saved["wall_time_s"] == 2.5
    assert json_ready([np.float32(0.5), (1, np.int64(2))]) == [0.5, [1, 2]]


def test_console_tables_show_n_a_with_the_reason_once() -> None:
    text = rendered(metrics_table(one_task_results()["metrics"]))
    assert text.count("n/a") == 4  # three undefined metrics + the caption
    assert REASON in " ".join(text.split())  # the caption may wrap
    assert "0.7500" in text and "0.0000" not in text
    # NaN counts as undefined too; numpy scalars are shown, not dropped
    text = rendered(metrics_table({"bwt": float("nan"), "avg_accuracy": np.float32(0.5)}))
    assert "n/a" in text and "0.5000" in text and "nan" not in text
    assert "n/a" not in rendered(metrics_table({"avg_accuracy": 0.5}))
    # an unfinished matrix: unmeasured cells are n/a, never 0
    text = rendered(matrix_table(["a", "b"], [[0.5, None], [None, float("nan")]], "R"))
    assert text.count("n/a") == 4 and "n/a: not measured" in text and "0.000" not in text


def test_report_html_of_a_one_task_run_says_n_a_and_why(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_results(run, one_task_results())
    text = write_report(run).read_text(encoding="utf-8")
    assert "<td>bwt</td><td>n/a</td><td>n/a</td>" in text
    assert "<td>fwt</td><td>n/a</td><td>n/a</td>" in text
    assert text.count(REASON) == 1 and "MISMATCH" not in text


def test_a_stored_zero_for_an_undefined_metric_is_flagged(tmp_path: Path) -> None:
    # results.json written before this fix: a one-task run with bwt 0.0
    old = one_task_results()
    old["metrics"] = {**old["metrics"], "bwt": 0.0, "avg_forgetting": 0.0, "fwt": 0.0}
    run = tmp_path / "old"
    run.mkdir()
    write_results(run, old)
    text = write_report(run).read_text(encoding="utf-8")
    assert text.count("MISMATCH") == 3 and '<span class="bad">0.0000</span>' in text


def test_partial_matrix_cells_in_report_html_are_n_a(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    partial = [[0.5, None], [None, None]]
    write_results(
        run,
        one_task_results(
            sequence=["a", "b"],
            accuracy_matrix=partial,
            cell_accuracy_matrix=None,
            reasoning_steps_matrix=None,
            random_init_accuracy=[0.1, None],
            curves=[[0.5], []],
            metrics={},
            forgetting=None,
            tasks=None,
        ),
    )
    text = write_report(run).read_text(encoding="utf-8")
    assert "Could not recompute" in text  # not averaged as zeros
    assert "n/a: not measured" in text and "0.000<" not in text


def write_seed(folder: Path, seed: int, metrics: dict) -> Path:
    folder.mkdir(parents=True)
    write_results(folder, one_task_results(seed=seed, metrics=metrics))
    return folder


def test_aggregate_over_seeds_uses_defined_values_only(tmp_path: Path) -> None:
    runs = [
        write_seed(tmp_path / "0", 0, {"avg_accuracy": 0.2, "bwt": -0.1, "fwt": None}),
        write_seed(tmp_path / "1", 1, {"avg_accuracy": 0.4, "bwt": None, "fwt": None}),
        write_seed(tmp_path / "2", 2, {"avg_accuracy": 0.6, "bwt": -0.3, "fwt": None}),
    ]
    result = aggregate(runs)
    bwt = result["metrics"]["bwt"]
    assert bwt["values"] == [-0.1, None, -0.3] and bwt["n"] == 2
    assert bwt["mean"] == pytest.approx(-0.2)  # not (-0.1 + 0 - 0.3) / 3
    assert bwt["std"] == pytest.approx(math.sqrt(0.02))
    assert result["metrics"]["fwt"]["n"] == 0 and result["metrics"]["fwt"]["mean"] is None
    assert result["metrics"]["avg_forgetting"]["n"] == 0  # absent counts as undefined
    assert result["metrics"]["avg_accuracy"]["mean"] == pytest.approx(0.4)
    json.dumps(result, allow_nan=False)
    text = words(aggregate_table(result))
    assert "fwt 0 n/a n/a n/a" in text
    assert "FWT needs at least 2 tasks and random-init accuracies" in text
    assert text.count("n/a: BWT") == 0  # bwt is defined in two runs: no reason for it


def test_one_seed_has_no_spread(tmp_path: Path) -> None:
    run = write_seed(tmp_path / "0", 0, {"avg_accuracy": 0.2, "bwt": None})
    result = aggregate([run])
    stats = result["metrics"]["avg_accuracy"]
    assert stats["mean"] == 0.2 and stats["std"] is None and stats["ci95"] is None
    text = words(aggregate_table(result))
    assert "avg_accuracy 1 0.2000 n/a n/a" in text
    assert "n/a: std and 95% CI need the metric defined in at least 2 runs" in text
    assert "BWT and forgetting need at least 2 tasks" in text
    # summary_stats itself skips None and NaN instead of counting them as 0
    assert summary_stats([None, float("nan"), 0.5])["mean"] == 0.5
    assert summary_stats([None])["n"] == 0 and summary_stats([None])["mean"] is None


def test_trmgym_report_of_a_one_task_run_and_of_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "solo"
    run.mkdir()
    write_results(run, one_task_results())
    assert main([str(run)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "n/a" in out and REASON in out and "mismatch" not in out
    multirun = tmp_path / "multi"
    for seed in range(2):
        write_seed(multirun / str(seed), seed, one_task_results()["metrics"])
    assert main([str(multirun), "--reps", "50"]) == 0
    saved = json.loads((multirun / "report.json").read_text())
    [group] = saved["groups"].values()
    bwt = group["metrics"]["bwt"]
    assert bwt["mean"] is None and bwt["ci95"] is None and bwt["values"] == [None, None]
    assert bwt["n_defined"] == 0 and bwt["n_undefined"] == 2
    assert "NaN" not in (multirun / "report.json").read_text()
    out = " ".join(capsys.readouterr().out.split())
    assert "| strategy=naive | 2 | 0.750 [0.750, 0.750] | n/a | n/a | n/a |" in out
    assert REASON in out


def test_forward_transfer_with_a_perfect_reference_is_undefined(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = one_task_results()
    scratch = one_task_results(strategy="scratch", random_init_accuracy=[1.0], curves=[[1.0, 1.0]])
    transfer = forward_transfer(run, scratch)
    assert transfer["ft"] is None and transfer["ft_per_task"] == [None]
    for name, results in (("run", run), ("scratch", scratch)):
        (tmp_path / name).mkdir()
        write_results(tmp_path / name, results)
    assert main([str(tmp_path / "run"), "--reference", str(tmp_path / "scratch")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "forward transfer (vs" in out and "): n/a" in out and "per task: n/a" in out
    assert "n/a: FT needs a scratch reference run" in out


def test_forward_transfer_refuses_an_unmeasured_start_instead_of_zero() -> None:
    run = one_task_results(
        sequence=["a", "b"],
        accuracy_matrix=[[0.5, None], [0.5, 0.5]],
        random_init_accuracy=[0.0, 0.0],
        curves=[[0.5], [0.5]],
        tasks=None,
    )
    scratch = {**run, "strategy": "scratch"}
    with pytest.raises(ValueError, match=r"accuracy_matrix\[0\]\[1\] is null"):
        forward_transfer(run, scratch)
    with pytest.raises(ValueError, match=r"reference: random_init_accuracy\[1\] is null"):
        forward_transfer({**run, "accuracy_matrix": [[0.5, 0.2], [0.5, 0.5]]},
                         {**scratch, "random_init_accuracy": [0.0, None]})  # fmt: skip
