"""Continual runs end to end: results.json schema, metrics consistency, exact resume."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves
from trmgym import metrics
from trmgym.experiment import ContinualRun, RunSettings
from trmgym.results import forward_transfer

ROOT = Path(__file__).resolve().parents[2]


def make_run(run_dir: Path, strategy: str = "replay") -> ContinualRun:
    return ContinualRun(
        TASKS, AGENT, {"name": strategy}, SETTINGS, run_dir, seed=3, device="cpu", console=False
    )


def test_results_schema_and_metrics(tmp_path: Path) -> None:
    results = make_run(tmp_path).run()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metrics"] == results["metrics"]
    for key in (
        "sequence",
        "strategy",
        "seed",
        "accuracy_matrix",
        "cell_accuracy_matrix",
        "random_init_accuracy",
        "metrics",
        "env_steps",
        "wall_time_s",
        "device",
        "versions",
    ):
        assert key in saved
    assert saved["sequence"] == ["recolour", "recolour-b"] and saved["strategy"] == "replay"
    R = saved["accuracy_matrix"]
    assert len(R) == 2 and all(len(row) == 2 for row in R)
    recomputed = metrics.summarize(
        R, saved["random_init_accuracy"], saved["reasoning_steps_matrix"][-1]
    )
    for key, value in saved["metrics"].items():
        assert value == pytest.approx(recomputed[key])
    assert saved["env_steps"] == 2 * 6 * 8
    assert len(saved["curves"][0]) == 2  # one evaluation per chunk
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_per_task_budgets(tmp_path: Path) -> None:
    """A task's own train_steps replaces run.train_steps for that task only."""
    tasks = [TASKS[0], dataclasses.replace(TASKS[1], train_steps=4)]
    run = ContinualRun(
        tasks, AGENT, {"name": "naive"}, SETTINGS, tmp_path, seed=3, device="cpu", console=False
    )
    assert run.budgets == [6, 4] and run.offsets == [0, 6, 10]
    results = run.run()
    assert results["env_steps"] == (6 + 4) * 8
    # chunks of eval_every=3: 3+3 for the first task, 3+1 for the second
    assert [len(curve) for curve in results["curves"]] == [2, 2]
    assert results["tasks"][1]["train_steps"] == 4 and results["tasks"][0]["train_steps"] is None


def test_forward_transfer_against_a_scratch_run(tmp_path: Path) -> None:
    scratch = make_run(tmp_path / "scratch", "scratch").run()
    settings = dataclasses.replace(SETTINGS, reference=str(tmp_path / "scratch"))
    results = ContinualRun(
        TASKS,
        AGENT,
        {"name": "naive"},
        settings,
        tmp_path / "naive",
        seed=3,
        device="cpu",
        console=False,
    ).run()
    expected = forward_transfer(results, scratch)
    assert results["metrics"]["ft"] == pytest.approx(expected["ft"])
    assert results["forward_transfer"]["ft_per_task"] == pytest.approx(expected["ft_per_task"])
    assert results["forward_transfer"]["reference"] == str(tmp_path / "scratch")
    # a reference that is not a scratch run is refused at start-up, before any training
    bad = dataclasses.replace(SETTINGS, reference=str(tmp_path / "naive"))
    with pytest.raises(ValueError, match="must be a run with strategy=scratch"):
        ContinualRun(TASKS, AGENT, {"name": "naive"}, bad, tmp_path / "bad", device="cpu")
    assert not (tmp_path / "bad").exists()


def test_resume_after_interruption_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = make_run(tmp_path / "whole").run()

    interrupt_after_saves(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        make_run(tmp_path / "split").run()
    resumed = make_run(tmp_path / "split").run()
    assert resumed["accuracy_matrix"] == reference["accuracy_matrix"]
    assert resumed["cell_accuracy_matrix"] == reference["cell_accuracy_matrix"]
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["curves"] == reference["curves"]
    assert resumed["env_steps"] == reference["env_steps"]
    # the record says where the second start took over: the third save ends task 0
    threads = torch.get_num_threads()
    cpu = f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"  # e.g. x86_64 AVX2
    assert reference["starts"] == [
        {"task": 0, "chunk": 0, "world_size": 1, "torch_threads": threads, "cpu": cpu}
    ]
    assert resumed["starts"] == [
        {"task": 0, "chunk": 0, "world_size": 1, "torch_threads": threads, "cpu": cpu},
        {"task": 1, "chunk": 0, "world_size": 1, "torch_threads": threads, "cpu": cpu},
    ]


def test_corrupt_last_checkpoint_falls_back_to_previous(tmp_path: Path) -> None:
    make_run(tmp_path).run()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        results = make_run(tmp_path).run()
    assert len(results["accuracy_matrix"]) == 2


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"train_steps": 0}, "run.train_steps must be an int >= 1"),
        ({"batch_size": -1}, "run.batch_size"),
        ({"canvas": [2]}, "run.canvas"),
    ],
)
def test_bad_run_settings(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RunSettings(**settings)


def test_canvas_smaller_than_a_task_is_rejected_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"canvas=\(2, 2\) is smaller than task 'recolour'"):
        ContinualRun(
            TASKS, AGENT, {"name": "naive"}, RunSettings(canvas=[2, 2]), tmp_path, device="cpu"
        )
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("strategy", "match"),
    [
        (
            {"name": "forgetful"},
            r"strategy must be one of \['naive', 'replay', 'ewc', 'multitask', 'scratch', "
            r"'memory', 'memory_replay'\]",
        ),
        ({"name": "replay", "memory_size": 0}, "strategy.memory_size must be an int >= 1"),
        ({"name": "replay", "mix": 0.5}, "bad arguments for strategy 'replay'"),
    ],
)
def test_bad_strategy(tmp_path: Path, strategy: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ContinualRun(TASKS, AGENT, strategy, SETTINGS, tmp_path, device="cpu")


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    # ROOT on the path: `plugins=[{_target_: tests.plugins.recording.RecordingPlugin}]` imports
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "trmgym.cli", "run", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    args = [
        "experiment=smoke",
        "strategy=replay",
        "device=cpu",
        "console=false",
        "run.train_steps=30",
        "run.eval_every=10",
    ]

    def recorder(name: str) -> str:  # a plugin recording every hook call (tests/plugins)
        path = tmp_path / f"{name}-events.json"
        return f"plugins=[{{_target_:tests.plugins.recording.RecordingPlugin,path:'{path}'}}]"

    whole = cli(*args, f"hydra.run.dir={tmp_path / 'whole'}", recorder("whole"), cwd=tmp_path)
    assert whole.wait(timeout=600) == 0, whole.stdout.read()
    reference = json.loads((tmp_path / "whole" / "results.json").read_text())

    # 2 tasks x 3 chunks -> 6 checkpoints; kill after the 3rd or 4th (~55% of the run)
    victim = cli(*args, f"hydra.run.dir={tmp_path / 'split'}", recorder("split"), cwd=tmp_path)
    ckpt = tmp_path / "split" / "checkpoints"
    deadline = time.time() + 600
    seen = set()
    while time.time() < deadline and victim.poll() is None:
        if (ckpt / "last.pt").exists():
            seen.add((ckpt / "last.pt").stat().st_mtime_ns)
        if len(seen) >= 3:
            os.kill(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "split" / "results.json").exists()

    config = (tmp_path / "split" / ".hydra" / "config.yaml").read_text()
    # a restart with other overrides is refused before anything is written
    other = cli(
        *args, "seed=7", f"hydra.run.dir={tmp_path / 'split'}", recorder("split"), cwd=tmp_path
    )
    assert other.wait(timeout=600) == 2  # refused at start-up: a usage error
    assert "seed was 0 there and is 7 now" in other.stdout.read()
    assert (tmp_path / "split" / ".hydra" / "config.yaml").read_text() == config

    again = cli(*args, f"hydra.run.dir={tmp_path / 'split'}", recorder("split"), cwd=tmp_path)
    assert again.wait(timeout=600) == 0, again.stdout.read()
    resumed = json.loads((tmp_path / "split" / "results.json").read_text())
    # the plugin's state was checkpointed by name and resumed: the same hook calls, once each
    events = json.loads((tmp_path / "whole-events.json").read_text())
    assert json.loads((tmp_path / "split-events.json").read_text()) == events
    assert ["after_task", 1] in events["events"] and events["per_step"]["penalty"] == 60
    assert resumed["accuracy_matrix"] == reference["accuracy_matrix"]
    assert resumed["cell_accuracy_matrix"] == reference["cell_accuracy_matrix"]
    assert resumed["metrics"] == reference["metrics"]


def test_resuming_with_different_settings_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C at seed 3 / batch 8, then a start with seed 7 / batch 4 on the same directory:
    refused at start-up, naming the key, and the directory is left exactly as it was."""
    interrupt_after_saves(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        make_run(tmp_path).run()

    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}

    before = snapshot()
    other_seed = ContinualRun(
        TASKS, AGENT, {"name": "replay"}, SETTINGS, tmp_path, seed=7, device="cpu", console=False
    )
    with pytest.raises(ValueError, match="seed was 3 there and is 7 now"):
        other_seed.run()
    smaller = dataclasses.replace(SETTINGS, batch_size=4)
    with pytest.raises(ValueError, match="run.batch_size was 8 there and is 4 now"):
        ContinualRun(
            TASKS, AGENT, {"name": "replay"}, smaller, tmp_path, seed=3, device="cpu", console=False
        ).run()
    with pytest.raises(ValueError, match="strategy was 'replay' there and is 'ewc' now"):
        make_run(tmp_path, "ewc").run()
    # as trmgym run builds it: the class path comes first, but the strategy is named by name
    targeted = ContinualRun(
        TASKS,
        AGENT,
        {"_target_": "trmgym.plugins.strategies.EWC", "name": "ewc"},
        SETTINGS,
        tmp_path,
        seed=3,
        device="cpu",
        console=False,
    )
    with pytest.raises(ValueError, match="strategy was 'replay' there and is 'ewc' now"):
        targeted.run()
    assert snapshot() == before  # nothing written, nothing lost
    # the same settings resume (console is display-only and threads change only speed)
    resumed = ContinualRun(
        TASKS,
        AGENT,
        {"name": "replay"},
        dataclasses.replace(SETTINGS, threads=1),
        tmp_path,
        seed=3,
        device="cpu",
        console=True,
    ).run()
    assert resumed["settings"]["threads"] == 1
    assert resumed["seed"] == 3 and resumed["env_steps"] == 2 * 6 * 8


def test_results_record_the_model_actually_built(tmp_path: Path) -> None:
    results = make_run(tmp_path, "naive").run()
    built = results["agent"]["model_config"]
    # tiny preset + the AGENT overrides + what the run derives (canvas, task embeddings)
    assert (built["hidden_size"], built["num_heads"], built["h_cycles"], built["l_cycles"]) == (
        32,
        2,
        1,
        1,
    )
    assert (built["grid_height"], built["grid_width"], built["seq_len"]) == (3, 3, 9)
    assert built["num_task_embeddings"] == 2
    assert results["agent"]["size"] == "tiny"


def test_one_task_run_reports_undefined_metrics_as_null(tmp_path: Path) -> None:
    run = ContinualRun(
        TASKS[:1], AGENT, {"name": "naive"}, SETTINGS, tmp_path, seed=3, device="cpu", console=False
    )
    results = run.run()
    saved = json.loads((tmp_path / "results.json").read_text())
    for key in ("bwt", "fwt", "avg_forgetting"):
        assert results["metrics"][key] is None and saved["metrics"][key] is None
    assert saved["metrics"]["avg_accuracy"] == saved["accuracy_matrix"][0][0]
    assert "n/a" in (tmp_path / "report.html").read_text()


def test_a_replay_quota_that_cannot_hold_every_task_is_refused_at_start_up(tmp_path: Path) -> None:
    tasks = [*TASKS, dataclasses.replace(TASKS[0], name="recolour-c")]
    with pytest.raises(ValueError, match=r"strategy.memory_size=2 is too small for 3 tasks"):
        ContinualRun(
            tasks, AGENT, {"name": "replay", "memory_size": 2}, SETTINGS, tmp_path, device="cpu"
        )
    assert not tmp_path.joinpath("checkpoints").exists()
    # without per-task quotas a 2-slot reservoir is allowed (its puzzles are then any tasks')
    ContinualRun(
        tasks,
        AGENT,
        {"name": "replay", "memory_size": 2, "task_quota": False},
        SETTINGS,
        tmp_path,
        device="cpu",
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"options": {"task_id": 5}}, r"task 'recolour': options \{'task_id': 5\}"),
        ({"train_kwargs": {"splt": "train"}}, r"task 'recolour' \(train env\):.*splt"),
        ({"eval_kwargs": {"max_size": 1}}, r"task 'recolour' \(eval env\)"),
    ],
)
def test_bad_task_arguments_fail_before_training(tmp_path: Path, change: dict, match: str) -> None:
    tasks = [dataclasses.replace(TASKS[0], **change), TASKS[1]]
    with pytest.raises(ValueError, match=match):
        ContinualRun(tasks, AGENT, {"name": "naive"}, SETTINGS, tmp_path, device="cpu")
    assert not tmp_path.joinpath("checkpoints").exists()


def test_a_difficulty_probe_the_last_task_cannot_take_fails_at_start_up(tmp_path: Path) -> None:
    settings = dataclasses.replace(SETTINGS, difficulty_probe=[{"blanks": 2}])
    with pytest.raises(ValueError, match=r"task 'recolour-b': run.difficulty_probe .*blanks"):
        ContinualRun(TASKS, AGENT, {"name": "naive"}, settings, tmp_path, device="cpu")


@pytest.mark.parametrize("seed", [-1, 1.5, True, 2**63, 10**20])
def test_bad_seed_is_named(tmp_path: Path, seed) -> None:
    # past an int64 torch's generators overflow ("Overflow when unpacking long long")
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*63 - 1\]"):
        ContinualRun(TASKS, AGENT, {"name": "naive"}, SETTINGS, tmp_path, seed=seed, device="cpu")


def test_load_checkpoint_restores_a_finished_run_for_analysis(tmp_path: Path) -> None:
    trained = make_run(tmp_path, "naive")
    results = trained.run()
    again = make_run(tmp_path, "naive")
    progress = again.load_checkpoint()
    assert (
        progress["task"] == len(TASKS) and progress["accuracy_matrix"] == results["accuracy_matrix"]
    )
    for a, b in zip(trained.agent.model.parameters(), again.agent.model.parameters()):
        assert torch.equal(a, b)
    assert again.evaluate(again.agent, 0).accuracy == results["accuracy_matrix"][-1][0]
    assert make_run(tmp_path / "empty", "naive").load_checkpoint() is None
    with pytest.raises(ValueError, match="strategy was 'naive' there and is 'ewc' now"):
        make_run(tmp_path, "ewc").load_checkpoint()


def test_a_run_holds_its_directory_and_clears_what_a_killed_save_left(tmp_path: Path) -> None:
    """While ContinualRun.run trains, the directory is held (a second run there is refused
    before it writes); a save's temporary file left by a kill is gone at the start."""
    from trmgym import rundir

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".ckpt-killed.tmp").write_bytes(b"half")
    run = make_run(tmp_path)
    seen = []
    fresh = run._fresh_state

    def looking() -> dict:  # the run's first state, built once the start-up is done
        seen.append(rundir.holding(tmp_path))
        seen.append((tmp_path / "checkpoints" / ".ckpt-killed.tmp").exists())
        return fresh()

    run._fresh_state = looking
    run.run()
    assert seen == [True, False]
    assert not rundir.holding(tmp_path)


def test_a_run_whose_weights_diverge_stops_naming_it_and_writes_no_results(
    tmp_path: Path,
) -> None:
    """An lr of 1e6 turns the weights to NaN in the first chunk; a NaN network solves nothing, so
    it would report zero forgetting and BWT as if it retained everything. The run stops instead,
    before evaluating, checkpointing or writing results, and says what to change."""
    from trmgym.experiment import TrainingDiverged

    agent = dataclasses.replace(AGENT, lr=1e6, grad_clip=0.0)
    run = ContinualRun(
        TASKS, agent, {"name": "naive"}, SETTINGS, tmp_path, seed=3, device="cpu", console=False
    )
    with pytest.raises(TrainingDiverged, match="training diverged: .* NaN or infinite after"):
        run.run()
    assert not (tmp_path / "results.json").exists()
    assert not list((tmp_path / "checkpoints").glob("*.pt"))
    # where and why, for `trmgym report` (no checkpoint says so) and the next start
    record = json.loads((tmp_path / "diverged.json").read_text())
    assert {k: record[k] for k in ("task", "task_name", "chunk")} == {
        "task": 0,
        "task_name": "recolour",
        "chunk": 0,
    }
    assert record["env_steps"] == SETTINGS.eval_every * SETTINGS.batch_size
    assert record["message"].startswith("training diverged: ")
    banner = run._banner(run._fresh_state(), resumed=True, done=0)
    assert banner[-1].startswith("warning: this run diverged before (diverged.json: training")
    assert banner[-1].endswith("to change agent.lr or agent.grad_clip, start a new run directory")


def test_a_run_that_finishes_drops_the_mark_of_an_earlier_divergence(tmp_path: Path) -> None:
    (tmp_path / "diverged.json").write_text('{"message": "from a plugin bug, since fixed"}')
    make_run(tmp_path).run()
    assert (tmp_path / "results.json").is_file()
    assert not (tmp_path / "diverged.json").exists()


def test_a_diverged_dqn_halting_head_stops_the_run_too(tmp_path: Path) -> None:
    """The Q-networks of the DQN halting head are weights of the agent: NaN there means it never
    halts (or always does), and the numbers after it mean nothing."""
    from trmgym.experiment import TrainingDiverged

    dqn = dataclasses.replace(AGENT.dqn, lr=1e12, learning_starts=1, batch_size=8)
    agent = dataclasses.replace(AGENT, halting="dqn", dqn=dqn)
    run = ContinualRun(
        TASKS, agent, {"name": "naive"}, SETTINGS, tmp_path, seed=3, device="cpu", console=False
    )
    with pytest.raises(TrainingDiverged, match=r"\(first: dqn\.q"):
        run.run()
    assert not (tmp_path / "results.json").exists()
