"""Curricula inside whole runs: results.json's block, exact resume, rehearsal, comparisons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trmgym.curricula.schedulers import LearningProgress, Rehearsal
from trmgym.experiment import ContinualRun

from ..tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves

pytestmark = pytest.mark.slow

#: the tiny ARCGen tasks, as levels of one env (programs 0 and 1)
LEVELS = [{"task_id": 0}, {"task_id": 1}]


def _run(run_dir: Path, plugin, tasks=TASKS[:1]) -> dict:  # noqa: ANN001
    return ContinualRun(
        tasks, AGENT, {"name": "naive"}, SETTINGS, run_dir, console=False, plugins=[plugin]
    ).run()


def test_results_hold_the_block_and_a_resumed_run_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _run(tmp_path / "whole", LearningProgress(LEVELS, seed=5))
    block = whole["curriculum"]
    assert block["name"] == "lp" and block["level_names"] == ["task_id=0", "task_id=1"]
    history = block["history"]
    assert history["step"] == [3, 6]  # one record per chunk, at the global optimizer step
    assert history["env_steps"] == [3 * 8, 6 * 8]  # batch 8
    assert all(abs(sum(p) - 1) < 1e-12 for p in history["probabilities"])

    interrupt_after_saves(monkeypatch, 1)  # Ctrl-C after the first chunk's checkpoint
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", LearningProgress(LEVELS, seed=5))
    resumed = _run(tmp_path / "cut", LearningProgress(LEVELS, seed=5))
    for key in ("curriculum", "accuracy_matrix", "curves", "env_steps"):
        assert resumed[key] == whole[key], key


def test_rehearsal_records_its_mix_of_tasks_per_chunk(
    tmp_path: Path,
) -> None:
    results = _run(tmp_path / "r", Rehearsal(ratio=0.5, seed=1), tasks=TASKS)
    block = results["curriculum"]
    assert block["name"] == "rehearsal" and block["ratio"] == 0.5
    # task 0 trains alone; during task 1 half the puzzles are task 0's
    assert block["history"]["probabilities"] == [[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]]
    assert block["level_names"] == ["task=0", "task=1"]


def test_curriculum_comparison_runs_each_curriculum_and_records_steps_to_threshold(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "cmp"
    command = [
        sys.executable, "-m", "trmgym.cli", "run", "experiment=single_task", "env=sudoku",
        "env.size=4", "env.blanks=2", "run.train_steps=6", "run.eval_every=3",
        "run.eval_episodes=8", "run.batch_size=8", "run.max_reasoning_steps=2",
        "+agent.model.hidden_size=32",
        "+agent.model.num_heads=2", "curriculum=ramp", "curriculum.levels={blanks:[1,2]}",
        "curriculum_comparison={against:[uniform,plr],threshold:0.01}", "console=false",
        "device=cpu", "run.threads=1", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    main = json.loads((run_dir / "results.json").read_text())
    block = main["curriculum"]
    assert block["name"] == "ramp" and block["threshold"] == 0.01
    assert set(block["steps_to_threshold"]) == {"ramp", "uniform", "plr"}
    assert block["level"] == {"size": 4, "blanks": 2}
    assert block["runs"] == {"uniform": "compare/uniform", "plr": "compare/plr"}
    for name in ("uniform", "plr"):
        arm = json.loads((run_dir / "compare" / name / "results.json").read_text())
        assert arm["curriculum"]["name"] == name
        assert arm["curriculum"]["levels"] == block["levels"]  # the same levels
        assert arm["seed"] == main["seed"] and arm["settings"] == main["settings"]
        assert block["curves"][name]["accuracy"] == arm["curves"][0]
        reached = [
            s for s, a in zip(block["curves"][name]["env_steps"], arm["curves"][0]) if a >= 0.01
        ]
        assert block["steps_to_threshold"][name] == (reached[0] if reached else None)
    assert block["curves"]["ramp"]["env_steps"] == [24, 48]
    assert block["budget_env_steps"] == 48
    assert "curriculum comparison: ramp " in (run_dir / "cli.log").read_text()
    # the values are tested on scripted curves (test_summarize_bounds_each_curriculum_by_its_own_
    # budget); here: one entry per compared curriculum, undefined where the ramp never got there
    mine = block["steps_to_threshold"]["ramp"]
    assert set(block["speedup"]) == {"uniform", "plr"}
    for name in ("uniform", "plr"):
        theirs = block["steps_to_threshold"][name]
        speedup = block["speedup"][name]
        if mine is None:
            assert speedup is None
        else:
            assert speedup["lower_bound"] is (theirs is None)
            assert speedup["ratio"] == pytest.approx((theirs or 48) / mine)
    assert (run_dir / "plots" / "curriculum.png").is_file()
    assert "Curriculum" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["curriculum_comparison={against:[uniform]}"], "needs a curriculum to compare"),
        (
            ["curriculum=ramp", "curriculum.levels={blanks:[1,2]}",
             "curriculum_comparison={against:[ramp]}"],
            "the run's own curriculum",
        ),
        (
            ["curriculum=ramp", "curriculum.levels={blanks:[1,2]}",
             "curriculum_comparison={against:[unifrom]}"],
            "no curriculum 'unifrom'; allowed: ['arc_stages', 'lp', 'plr', 'ramp'",
        ),
        (
            ["curriculum=ramp", "curriculum.levels={blanks:[1,2]}",
             "curriculum_comparison={against:[uniform],threshold:0}"],
            "curriculum_comparison.threshold must be a number in (0, 1], got 0",
        ),
        (
            ["curriculum=ramp", "curriculum.levels={blanks:[1,2]}",
             "curriculum_comparison={against:[uniform],treshold:0.5}"],
            "curriculum_comparison.treshold: no such key; allowed keys: ['against', 'threshold']",
        ),
    ],
)  # fmt: skip
def test_a_bad_comparison_is_refused_in_one_line_before_anything_runs(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    run_dir = tmp_path / "bad"
    command = [
        sys.executable, "-m", "trmgym.cli", "run", "experiment=single_task", "env=sudoku",
        "env.size=4", "env.blanks=2", "console=false", "device=cpu",
        f"hydra.run.dir={run_dir}", *overrides,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr.strip().splitlines()[-1]
    assert not run_dir.exists()
