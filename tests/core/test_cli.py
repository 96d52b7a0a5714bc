"""The `trmgym` command: Hydra config composition from a clone and from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import trmgym
from trmgym.cli import config_dir, main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, python: str = sys.executable, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "trmgym.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_config_dir_holds_the_root_config() -> None:
    assert (config_dir() / "config.yaml").is_file()
    assert (config_dir() / "env" / "sudoku.yaml").is_file()


def test_cfg_job_prints_composed_config() -> None:
    result = run_cli("run", "--cfg", "job", "experiment=single_task", "env=maze", "seed=7")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "id: trmgym/Maze-v0" in result.stdout
    assert "seed: 7" in result.stdout


def test_unknown_env_group_lists_choices() -> None:
    result = run_cli("run", "--cfg", "job", "env=chess")
    assert result.returncode != 0
    assert "chess" in result.stderr and "sudoku" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # refused while composing, against the schemas (trmgym.config), before Hydra starts
        (
            ["run.batch_sise=8"],
            "trmgym run: run.batch_sise: no such key; allowed keys of run: train_steps, "
            "batch_size, max_reasoning_steps, eval_episodes, eval_every, canvas, task_labels, "
            "difficulty_probe, reference, threads, budget_scale, log_every\n",
        ),
        (
            ["agent=sb3_ppo", "agent.n_stepz=4"],
            "trmgym run: agent.n_stepz: no such key; allowed keys of agent: name, embed_dim, "
            "channels, features_dim, net_arch, learning_rate, gamma, deterministic_eval, "
            "n_steps, batch_size, n_epochs, gae_lambda, clip_range, ent_coef, vf_coef, "
            "max_grad_norm\n",
        ),
        ("seed=abc".split(), "trmgym run: seed must be an int, got 'abc'\n"),
        (
            ["strategy=replay", "strategy.mix_ratio=abc"],
            "trmgym run: strategy.mix_ratio must be a number, got 'abc'\n",
        ),
        (
            ["env=chess"],
            "trmgym run: env=chess: no such option; allowed: arc, arcgen, maze, sudoku\n",
        ),
        (
            ["agent.memory.capacity=8"],
            "trmgym run: agent.memory.capacity: agent.memory is null in this configuration; "
            "choose one first (agent/memory=bank|none), then set "
            "agent.memory.capacity\n",
        ),
        (  # a plain node, not a group: no option to choose
            [
                "curriculum=ramp",
                "curriculum.levels={blanks:[1,2]}",
                "curriculum_comparison.against=[uniform]",
            ],
            "trmgym run: curriculum_comparison.against: curriculum_comparison is null in this "
            "configuration; give it whole (curriculum_comparison={against: ...}) or add the key "
            "with +curriculum_comparison.against=...\n",
        ),  # fmt: skip
        (
            ["agent.halting=foo"],
            "trmgym run: agent.halting must be one of ['bce', 'dqn'], got 'foo'\n",
        ),
        (
            ["agent.dqn.buffer_size=0"],
            "trmgym run: agent.dqn.buffer_size must be an int >= 1, got 0\n",
        ),
    ],
)
def test_bad_values_fail_at_start_up_naming_the_key(
    overrides: list[str], message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Refused while composing, before Hydra starts: ``main`` in this process (the console
    script's exit status and stderr; a subprocess per case cost ~4 s of start-up each)."""
    monkeypatch.setattr(
        "trmgym.cli._hydra_app", lambda task: pytest.fail("the command line reached Hydra")
    )
    run_dir = tmp_path / "run"
    argv = ["run", "experiment=smoke", "device=cpu", "console=false", f"hydra.run.dir={run_dir}"]
    with pytest.raises(SystemExit) as stop:
        main([*argv, *overrides])
    assert stop.value.code == 2  # a usage error, as argparse exits
    assert capsys.readouterr().err == message  # one line, no traceback
    assert not run_dir.exists()  # nothing left on disk


def test_a_bad_value_refused_inside_the_hydra_app_leaves_nothing(tmp_path: Path) -> None:
    """A range check of build_run, after Hydra made the run directory: one line, exit 2, and
    the directory removed (a real process: Hydra configures logging for the whole process)."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "run",
        "experiment=smoke",
        "device=cpu",
        "console=false",
        f"hydra.run.dir={run_dir}",
        "strategy=replay",
        "strategy.mix_ratio=2",
    )
    assert result.returncode == 2
    assert result.stderr == "trmgym run: strategy.mix_ratio must be a number in [0, 1], got 2.0\n"
    assert not run_dir.exists()  # not even the directory Hydra made


def test_a_baseline_agent_on_an_experiment_with_trm_keys_is_told_which_experiments_fit(
    tmp_path: Path,
) -> None:
    """The quickstart (the default experiment) sets agent.model, a TRM key: one line saying so."""
    result = run_cli("run", "agent=sb3_ppo", "console=false", f"hydra.run.dir={tmp_path / 'r'}")
    assert result.returncode == 2
    assert result.stderr == (
        "trmgym run: agent.model: no such key; allowed keys of agent: name, embed_dim, "
        "channels, features_dim, net_arch, learning_rate, gamma, deterministic_eval, "
        "n_steps, batch_size, n_epochs, gae_lambda, clip_range, ent_coef, vf_coef, "
        "max_grad_norm (experiment=quickstart sets agent.model, a key of the TRM agent; with "
        "agent=sb3_ppo use experiment=single_task env.action_mode=edit|walk, "
        "experiment=curiosity_maze or experiment=continual sequence=sudoku-edit)\n"
    )
    # an SB3 key on the random agent: owned by the SB3 agents, and the same setting offered
    # as a single_task command rather than the experiment that just failed
    result = run_cli(
        "run", "experiment=curiosity_maze", "agent=random", f"hydra.run.dir={tmp_path / 'q'}"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "trmgym run: agent.deterministic_eval: no such key; allowed keys of agent: name "
        "(experiment=curiosity_maze sets agent.deterministic_eval, a key of "
        "agent=sb3_ppo|sb3_dqn|sb3_maskable_ppo; with agent=random run its setting as "
        "experiment=single_task env=maze env.size=9 env.action_mode=walk env.reward=sparse "
        "run.train_steps=1500 run.batch_size=64 run.eval_episodes=256)\n"
    )


def test_unknown_command_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["fly"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "trmgym: unknown command 'fly'; allowed: run, demo, report\n"


@pytest.mark.slow
def test_configs_found_from_an_installed_wheel(tmp_path: Path) -> None:
    """Build the wheel, install it (without deps) into a fresh venv that borrows this venv's
    dependencies, and compose a config from outside the source tree."""
    dist = tmp_path / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("trmgym-*.whl"))
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    py = target / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # borrow dependencies (torch, hydra, ...) from the running interpreter's site-packages
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [
            str(py),
            "-c",
            "import trmgym, trmgym.cli as c; print(trmgym.__file__); print(c.config_dir())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    package_file, configs = where.stdout.split()
    assert package_file.startswith(site) and configs.startswith(site)
    result = subprocess.run(
        [str(py), "-m", "trmgym.cli", "run", "--cfg", "job", "env=arcgen"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "id: trmgym/ARCGen-v0" in result.stdout
    assert trmgym.__version__ != "0.0.0+unknown"


def test_a_finished_run_started_again_changes_nothing(tmp_path: Path) -> None:
    """Starting a finished run again with other thread or logging settings (not part of its
    configuration) trains nothing and rewrites nothing: results.json keeps the threads it was
    trained with, .hydra/ keeps its overrides."""
    run_dir = tmp_path / "run"
    tiny = [
        "run",
        "experiment=smoke",
        "device=cpu",
        "console=false",
        f"hydra.run.dir={run_dir}",
        "run.train_steps=2",
        "run.eval_every=2",
        "run.eval_episodes=4",
    ]
    first = run_cli(*tiny, "run.threads=2")
    assert first.returncode == 0, first.stderr[-2000:]
    kept = {
        name: (run_dir / name).read_bytes()
        for name in ("results.json", "report.html", ".hydra/overrides.yaml", ".hydra/config.yaml")
    }
    again = run_cli(*tiny, "run.threads=1", "run.log_every=5")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished (results.json), skipped" in again.stdout
    assert {name: (run_dir / name).read_bytes() for name in kept} == kept


def test_the_resume_command_keeps_the_users_config_dir(tmp_path: Path) -> None:
    """A sequence of the user's own lives in their --config-dir: the command Ctrl-C prints must
    name it, or it fails with `sequence=...: no such option`."""
    from omegaconf import OmegaConf

    from trmgym.cli import interrupted_message

    hydra_cfg = OmegaConf.create(
        {
            "overrides": {"task": ["experiment=continual", "sequence=sud3"]},
            "runtime": {
                "config_sources": [
                    {"path": "pkg://trmgym.configs", "schema": "pkg", "provider": "main"},
                    {
                        "path": "file:///home/me/my configs",
                        "schema": "file",
                        "provider": "command-line",
                    },
                ]
            },
        }
    )
    message = interrupted_message(tmp_path / "run", hydra_cfg)
    assert message.splitlines()[1].strip() == (
        "trmgym run --config-dir '/home/me/my configs' experiment=continual sequence=sud3 "
        f"hydra.run.dir={tmp_path / 'run'}"
    )


def test_a_warning_of_building_the_run_is_one_line_and_in_cli_log(tmp_path: Path) -> None:
    """A memory bank that the strategy never writes is worth a warning: one line on stderr, as
    start-up warnings are (not Python's two-line form with its source line), and in cli.log."""
    run_dir = tmp_path / "run"
    done = run_cli(
        "run", "experiment=smoke", "device=cpu", "console=false", f"hydra.run.dir={run_dir}",
        "agent/memory=bank", "strategy=replay", "run.train_steps=2", "run.eval_every=2",
        "run.eval_episodes=4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line for line in done.stderr.splitlines() if "never writes the bank" in line]
    assert warned == [
        "trmgym run: warning: agent.memory is set but strategy=replay never writes the bank: it "
        "stays empty and the reader adds nothing (strategy=memory or memory_replay write it)"
    ]
    assert "UserWarning" not in done.stderr
    assert "warning: agent.memory is set but strategy=replay" in (run_dir / "cli.log").read_text()
