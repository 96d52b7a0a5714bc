"""A newcomer's first hour: what `trmgym` prints, refuses and leaves on disk.

Each check runs the real console entry point (in-process where it can, as a subprocess where the
terminal, signals or the exit status of the process matter).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trmgym
from trmgym.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["experiment=smoke", "device=cpu", "run.threads=1"]


def trmgym_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``trmgym ARGS`` as a process whose output is a pipe (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "trmgym.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


# ------------------------------------------------------------------------------- --version/help
@pytest.mark.parametrize("argv", [["--version"], ["-V"], ["run", "--version"]])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    main(argv)
    assert capsys.readouterr().out == f"trmgym {trmgym.__version__}\n"


def test_run_help_names_the_app_and_omits_the_config(tmp_path: Path) -> None:
    result = trmgym_cli("run", "--help", cwd=tmp_path)  # a process: Hydra's help exits it
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("trmgym run:")
    assert "cli is powered by Hydra" not in out and "== Config ==" not in out
    assert "env: arc, arcgen, maze, sudoku" in out
    assert "seed: 0" not in out  # the composed config is what --cfg job prints


def test_demo_help_is_short(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: trmgym demo") and len(out.splitlines()) < 15


# ---------------------------------------------------------------------------- start-up errors
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seed=abc"], "trmgym run: seed must be an int, got 'abc'"),
        (
            ["env=mazee"],
            "trmgym run: env=mazee: no such option; allowed: arc, arcgen, maze, sudoku",
        ),
        (
            ["curriculum=null"],
            "trmgym run: curriculum=null: a config group takes one of its options; leave "
            "curriculum out for its default, or drop the group's choice with ~curriculum",
        ),
        (
            ["curriculum=rampp"],
            "trmgym run: curriculum=rampp: no such option; allowed: arc_stages, lp, plr, ramp, "
            "rehearsal, staged, uniform",
        ),
        (
            ["+foo=1"],
            "trmgym run: +foo=1: trmgym has no setting 'foo'; top-level keys: agent, "
            "console, curiosity, curriculum, curriculum_comparison, demo, device, env, eval, "
            "experiment_name, fewshot, meta, plugins, run, seed, sequence, strategy",
        ),
        # overrides the chosen experiment would ignore
        (
            ["experiment=quickstart", "env=maze", "env.size=7"],
            "trmgym run: env=maze is not used: experiment quickstart trains the sequence "
            "'quickstart' (sequence.tasks), not env; for a single task give "
            "experiment=single_task env=maze",
        ),
        # every value of a sweep is checked before the first job starts, ranges included
        (["-m", "seed=0,1,abc"], "trmgym run: seed must be an int, got 'abc'"),
        (
            ["-m", "experiment=smoke", "run.budget_scale=0.1,0"],
            "trmgym run: run.budget_scale must be a number > 0, got 0.0",
        ),
        (
            ["-m", "agent.halting=dqn,foo"],
            "trmgym run: agent.halting must be one of ['bce', 'dqn'], got 'foo'",
        ),
        (
            ["strategy=replay,naive"],
            "trmgym run: strategy=replay,naive sweeps over values: add -m (--multirun) to run "
            "one job per value",
        ),
        (
            ["-m", "seed=0", "--cfg", "job"],
            "trmgym run: --cfg prints one configuration: drop -m (--multirun) to see a job's",
        ),
        # NaN passes every `value < 0` check and inf every `value > 0` one: no setting takes
        # either, wherever it is (a diverged lr=inf run once reported zero forgetting)
        (["agent.lr=inf"], "trmgym run: agent.lr must be a finite number, got inf"),
        (  # stable-baselines3 seeds numpy's legacy generator: 32 bits
            ["experiment=curiosity_maze", "seed=4294967296"],
            "trmgym run: seed must be an int in [0, 2**32 - 1] with agent=sb3_ppo, got 4294967296",
        ),
        (  # the same range below 0: it quoted the TRM's 2**63 - 1
            ["experiment=curiosity_maze", "seed=-1"],
            "trmgym run: seed must be an int in [0, 2**32 - 1] with agent=sb3_ppo, got -1",
        ),
        (  # agent.model holds overrides, added with +: not "no such key" and a wrong list
            ["agent.model.hidden_size=64"],
            "trmgym run: agent.model.hidden_size: no such key; agent.model holds overrides of "
            "the TRM's fields: give one with +agent.model.hidden_size=... if it is one "
            "(vocab_size, seq_len, grid_height, grid_width, hidden_size, num_heads, expansion, "
            "h_cycles, l_cycles, num_layers, block, pos_encoding, num_task_embeddings, "
            "puzzle_emb_len, rope_theta, rms_norm_eps, loss, forward_dtype)",
        ),
        (  # a plain YAML node (no schema): its own keys are listed
            ["experiment=single_task", "env=sudoku", "env.sizee=4"],
            "trmgym run: env.sizee: no such key; allowed keys of env: id, name, size, blanks, "
            "action_mode, reward, train, eval (a new key takes a +)",
        ),
        (
            ["seed=99999999999999999999"],
            "trmgym run: seed must be an int in [0, 2**63 - 1], got 99999999999999999999",
        ),
        (["agent.dqn.lr=nan"], "trmgym run: agent.dqn.lr must be a finite number, got nan"),
        (
            ["experiment=curiosity_maze", "curiosity=rnd", "curiosity.coef=-inf"],
            "trmgym run: curiosity.coef must be a finite number, got -inf",
        ),
        (
            ["-m", "strategy=ewc", "strategy.ewc_lambda=1,inf"],
            "trmgym run: strategy.ewc_lambda must be a finite number, got inf",
        ),
        # a few-shot experiment reads fewshot.*, meta.*, agent.*, seed, device, console and
        # run.threads: anything else would be silently ignored, a sequence would make it a
        # continual run, and a fewshot choice on a continual run needs eval.fewshot
        (
            ["experiment=fewshot_arcgen", "strategy=ewc", "run.train_steps=7"],
            "trmgym run: strategy=ewc run.train_steps=7 is not used: "
            "experiment=fewshot_arcgen is a few-shot experiment, which reads fewshot.*, meta.*, "
            "agent.* (not its halting or dqn), seed, device, console and run.threads only (its "
            "budgets are fewshot.* and meta.*)",
        ),
        (
            ["experiment=fewshot_arcgen", "sequence=arcgen-8"],
            "trmgym run: sequence=arcgen-8 turns experiment=fewshot_arcgen into a continual "
            "run, which reads neither fewshot.* nor meta.*; drop it, or add eval.fewshot=true "
            "to a continual experiment to measure few-shot transfer after each task",
        ),
        (
            ["fewshot=arcgen"],
            "trmgym run: fewshot=arcgen is not used: a continual run reads the fewshot node "
            "only with eval.fewshot=true (few-shot transfer after each task); add it, or use "
            "experiment=fewshot_arcgen",
        ),
        # a key added with + is checked against its node's schema
        (
            ["+run.budget_scal=0.1"],
            "trmgym run: +run.budget_scal=0.1: run has no key 'budget_scal'; allowed keys of "
            "run: train_steps, batch_size, max_reasoning_steps, eval_episodes, eval_every, "
            "canvas, task_labels, difficulty_probe, reference, threads, budget_scale, log_every",
        ),
        (
            ["experiment=single_task", "env=sudoku", "sequence=smoke"],
            "trmgym run: env=sudoku is not used: sequence=smoke trains that sequence, not env; "
            "give either a sequence or env=sudoku (with experiment=single_task)",
        ),
    ],
)
def test_a_bad_command_line_is_one_line_exit_2_and_leaves_nothing(
    overrides: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(SystemExit) as stop:
            main(["run", *overrides])
    finally:
        os.chdir(cwd)
    assert stop.value.code == 2
    assert capsys.readouterr().err == message + "\n"
    assert files_below(tmp_path) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.batch_size=0", "run.batch_size must be an int >= 1, got 0"),
        ("run.budget_scale=0", "run.budget_scale must be a number > 0, got 0.0"),
        ("+agent.model.h_cycles=0", "agent.model.h_cycles must be a positive int, got 0"),
        (  # experiment=curriculum_sudoku's own body sets curriculum keys
            "experiment=curriculum_sudoku ~curriculum",
            "curriculum sets ['levels', 'patience'] but no curriculum is chosen: choose one "
            "(curriculum=ramp|uniform|staged|arc_stages|lp|plr|rehearsal); to train without a "
            "curriculum, use an experiment that chooses none (e.g. experiment=single_task with "
            "the same env)",
        ),
    ],
)
def test_a_range_error_found_when_the_run_is_built_leaves_no_directory(
    override: str, message: str, tmp_path: Path
) -> None:
    # a subprocess: Hydra has created the run directory and configured logging by then
    result = trmgym_cli("run", *SMOKE, *override.split(), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"trmgym run: {message}\n"
    assert files_below(tmp_path) == []  # not even runs/smoke/<time>/cli.log


def test_a_refused_resume_keeps_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "keep.txt").write_text("a user's file")
    result = trmgym_cli("run", *SMOKE, "run.batch_size=0", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert (run_dir / "checkpoints" / "keep.txt").read_text() == "a user's file"


@pytest.mark.parametrize(
    ("overrides", "warning", "shown"),
    [
        (
            ["agent.halting=bce", "agent.dqn.gamma=0.5"],
            "agent.dqn.gamma=0.5: not used with agent.halting=bce (the DQN halting head only)",
            "halting: bce",
        ),
        (
            ["experiment=quickstart", "run.train_steps=2"],
            "run.train_steps=2 sets the budget of the tasks without their own train_steps only; "
            "recolour-a, recolour-b keep theirs (run.budget_scale scales every budget)",
            "train_steps: 2",
        ),
    ],
)
def test_ignorable_overrides_are_warnings(
    overrides: list[str], warning: str, shown: str, tmp_path: Path
) -> None:
    result = trmgym_cli("run", *overrides, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == f"trmgym run: warning: {warning}\n"
    assert shown in result.stdout


def own_sequence(tmp_path: Path, budgets: tuple[int | None, int | None] = (None, None)) -> Path:
    """A config dir with ``sequence/two.yaml``: two Sudoku tasks, with these own budgets."""
    configs = tmp_path / "my_configs" / "sequence"
    configs.mkdir(parents=True)
    tasks = "".join(
        f"  - {{name: {name}, id: trmgym/Sudoku-v0, size: 4, blanks: {k + 2}"
        + (f", train_steps: {b}" if b else "")
        + "}\n"
        for k, (name, b) in enumerate(zip("ab", budgets))
    )
    (configs / "two.yaml").write_text(f"name: two\ntasks:\n{tasks}")
    return configs.parent


def test_train_steps_that_no_task_uses_is_refused(tmp_path: Path) -> None:
    configs = own_sequence(tmp_path, (30, 50))
    result = trmgym_cli(
        "run", "--config-dir", str(configs), "sequence=two", "run.train_steps=2", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr == (
        "trmgym run: run.train_steps=2 is not used: every task of the sequence 'two' has its "
        "own train_steps; scale every budget with run.budget_scale (e.g. run.budget_scale=0.1)\n"
    )
    assert set(files_below(tmp_path)) == {configs, *files_below(configs)}  # no runs/


def test_flags_may_follow_the_overrides(tmp_path: Path) -> None:
    own_sequence(tmp_path)
    result = trmgym_cli(
        "run",
        "sequence=two",
        "--cfg",
        "job",
        "--config-dir",
        str(tmp_path / "my_configs"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "name: two" in result.stdout


# ------------------------------------------------------------------------------------- demo
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["env.size=5"], "trmgym demo: size must be one of [4, 6, 9], got 5"),
        (["demo.episodes=0"], "trmgym demo: demo.episodes must be an int >= 1, got 0"),
    ],
)
def test_demo_refuses_bad_values_in_one_line(
    overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["demo", "env=sudoku", *overrides])
    assert stop.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_demo_writes_nothing_and_shows_every_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        main(["demo", "env=maze", "env.size=5", "demo.episodes=1", "demo.cells_per_step=1"])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert files_below(tmp_path) == []
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    final = next(line for line in out.splitlines() if line.startswith("steps="))
    assert len(steps) == int(final.split()[0].removeprefix("steps=")) >= 2
    assert [int(s.split(":")[0].removeprefix("step ")) for s in steps] == list(
        range(1, len(steps) + 1)
    )


# --------------------------------------------------------------------------- progress, resume
@pytest.mark.slow
def test_without_a_terminal_a_run_prints_a_banner_a_line_per_chunk_and_its_results(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    result = trmgym_cli(
        "run", *SMOKE, "run.budget_scale=0.5", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"trmgym {trmgym.__version__} | run dir {run_dir}"
    assert lines[1].startswith("device cpu | torch threads 1 (run.threads=1) | seed 0 | batch 32")
    # budget_scale halves every task's budget, per-task ones included (smoke: 40 each)
    assert (
        lines[2]
        == "smoke: 2 tasks, optimizer steps recolour4 (20), sudoku4 (20) (budget_scale 0.5)"
    )
    chunks = [line for line in lines if line.startswith("task ")]
    assert [c.split(" | ")[:2] for c in chunks] == [
        ["task 1/2 recolour4", "step 20/40"],
        ["task 2/2 sudoku4", "step 40/40"],
    ]
    assert all("train exact" in c and "eval accuracy" in c and "| eta " in c for c in chunks)
    assert lines[-1].startswith(f"results: {run_dir / 'results.json'} (wall time ")
    log = (run_dir / "cli.log").read_text()
    assert "task 2/2 sudoku4 | step 40/40" in log and "run dir" in log


@pytest.mark.slow
def test_console_false_still_says_where_the_run_is(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = trmgym_cli(
        "run",
        *SMOKE,
        "run.budget_scale=0.25",
        "console=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"run dir {run_dir}") and lines[1].startswith("results: ")


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_the_resume_says_where(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "trmgym.cli", "run", *SMOKE, f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a job started in the background by a non-interactive shell (make test &, CI) ignores
        # SIGINT, and Python keeps an ignored SIGINT ignored: give the run Ctrl-C back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # interrupt after the first checkpoint
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err  # four chunks: not finished 0.2 s after the first
    lines = err.splitlines()
    assert len(lines) == 2, err  # no traceback
    assert lines[0].startswith(f"interrupted; the same command resumes {run_dir} at its last")
    assert lines[1].strip().startswith("trmgym run experiment=smoke")
    assert lines[1].strip().endswith(f"hydra.run.dir={run_dir}")
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert any(line.startswith("resuming from task ") for line in again.stdout.splitlines())


def test_a_run_directory_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hydra would make the directory before trmgym runs and fail with a traceback."""
    (tmp_path / "afile").write_text("a user's file")
    cases = [
        (["hydra.run.dir=afile"], "hydra.run.dir=afile: that path is a file, not a folder"),
        (["hydra.run.dir=afile/run"], "hydra.run.dir=afile/run: afile is a file, not a folder"),
        (
            ["-m", "seed=0,1", "hydra.sweep.dir=afile"],
            "hydra.sweep.dir=afile: that path is a file, not a folder",
        ),
    ]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for overrides, message in cases:
            with pytest.raises(SystemExit) as stop:
                main(["run", "experiment=smoke", *overrides])
            assert stop.value.code == 2
            assert capsys.readouterr().err == f"trmgym run: {message}\n"
    finally:
        os.chdir(cwd)
    assert (tmp_path / "afile").read_text() == "a user's file"


def test_a_sweep_over_experiments_warns_about_what_one_of_them_ignores() -> None:
    """`-m experiment=quickstart,fewshot_arcgen run.budget_scale=0.04`: the quickstart job reads
    it, the few-shot job does not; refusing would stop the whole sweep, so the few-shot job's
    share is a one-line warning naming the job."""
    from trmgym.cli import config_dir
    from trmgym.startup import check_command_line, parse_command_line

    argv = ["-m", "experiment=quickstart,fewshot_arcgen", "run.budget_scale=0.04"]
    args, _ = parse_command_line(argv)
    with pytest.warns(UserWarning) as caught:
        check_command_line("run", args, config_dir())
    messages = [str(w.message) for w in caught]
    assert any(
        m.startswith(
            "experiment=fewshot_arcgen run.budget_scale=0.04: run.budget_scale=0.04 is "
            "not used: experiment=fewshot_arcgen is a few-shot experiment"
        )
        for m in messages
    ), messages
