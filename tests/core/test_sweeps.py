"""Sweeps (`trmgym run -m ...`): parallel launchers, each job's thread share, resumable sweep dirs.

The subprocess tests run real multiruns of ``experiment=smoke`` with a budget of a few steps;
the rest checks the pieces in-process (job directory names, ``run.threads``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from trmgym.cli import MAX_SUBDIR, config_dir, sweep_subdir
from trmgym.config import RunSettings, build_run
from trmgym.threads import apply_threads, check_threads, concurrent_jobs, resolve_threads

ROOT = Path(__file__).resolve().parents[2]
#: experiment=smoke in a few steps: two tasks, one chunk each
TINY = (
    "experiment=smoke",
    "device=cpu",
    "console=false",
    "run.train_steps=2",
    "run.eval_every=2",
    "run.eval_episodes=2",
    "run.batch_size=2",
    "run.max_reasoning_steps=2",
)
#: a job's directory: its overrides, sorted, but console (only printing)
JOB_DIR = (
    "device=cpu,experiment=smoke,run.batch_size=2,run.eval_episodes=2,run.eval_every=2,"
    "run.max_reasoning_steps=2,run.train_steps=2,seed={seed}"
)


def multirun(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`trmgym run -m TINY overrides` in ``cwd``; workers import trmgym from this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "trmgym.cli", "run", "-m", *TINY, *overrides],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# --------------------------------------------------------------------------- job directories
def test_a_job_directory_is_named_by_its_overrides() -> None:
    assert sweep_subdir("seed=1,strategy=replay", 4) == "seed=1,strategy=replay"
    assert sweep_subdir("seed=0,strategy=replay", 0) != sweep_subdir("seed=1,strategy=replay", 1)
    assert sweep_subdir("", 3) == "3"  # no overrides: the job number
    assert sweep_subdir(None, 0) == "0"


def test_a_job_directory_name_is_one_safe_path_component() -> None:
    name = sweep_subdir("run.reference=runs/scratch/0,seed=1", 0)
    assert "/" not in name and name.startswith("run.reference=runs%2Fscratch%2F0")
    long_a = sweep_subdir(",".join(f"k{i}=v" for i in range(100)), 0)
    long_b = sweep_subdir(",".join(f"k{i}=v" for i in range(101)), 0)
    assert len(long_a) == MAX_SUBDIR and long_a != long_b  # cut, and told apart by a hash


# ------------------------------------------------------------------------------ run.threads
@pytest.mark.parametrize(
    ("launcher", "mode", "expected"),
    [
        ({"_target_": "JoblibLauncher", "n_jobs": 2}, "MULTIRUN", 4),
        ({"_target_": "JoblibLauncher", "n_jobs": 3}, "MULTIRUN", 2),
        ({"_target_": "JoblibLauncher", "n_jobs": -1}, "MULTIRUN", 1),  # a job per core
        ({"_target_": "JoblibLauncher", "n_jobs": -2}, "MULTIRUN", 1),  # 7 jobs
        ({"_target_": "JoblibLauncher", "n_jobs": 16}, "MULTIRUN", 1),  # never 0
        ({"_target_": "RayLauncher", "ray": {"init": {}, "remote": {}}}, "MULTIRUN", 1),
        ({"_target_": "RayLauncher", "ray": {"remote": {"num_cpus": 3}}}, "MULTIRUN", 3),
        ({"_target_": "BasicLauncher"}, "MULTIRUN", 8),  # one job at a time
        ({"_target_": "JoblibLauncher", "n_jobs": 2}, "RUN", 8),  # a single run
    ],
)
def test_auto_threads_share_the_cores_among_concurrent_jobs(
    launcher: dict, mode: str, expected: int
) -> None:
    hydra_cfg = {"mode": mode, "launcher": launcher}
    threads, reason = resolve_threads("auto", hydra_cfg, cores=8, busy=0)
    assert threads == expected
    assert reason.startswith("run.threads=auto")
    assert resolve_threads(5, hydra_cfg, cores=8) == (5, "run.threads=5")


def test_auto_threads_share_the_cores_among_data_parallel_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun --nproc_per_node 2
    threads, reason = resolve_threads("auto", None, cores=8)
    assert threads == 4 and "2 data-parallel processes" in reason
    joblib = {"mode": "MULTIRUN", "launcher": {"n_jobs": 2}}
    assert resolve_threads("auto", joblib, cores=8)[0] == 2
    assert resolve_threads(3, joblib, cores=8)[0] == 3  # an explicit count is kept


def test_concurrent_jobs_of_a_joblib_sweep() -> None:
    joblib = {"mode": "MULTIRUN", "launcher": {"n_jobs": 2}}
    assert concurrent_jobs(joblib, cores=8) == 2
    assert concurrent_jobs({"mode": "RUN", "launcher": {"n_jobs": 2}}, cores=8) == 1
    assert concurrent_jobs(None, cores=8) == 1
    assert resolve_threads("auto", busy=0)[0] == max(1, cores())  # outside Hydra: one job


def test_a_single_run_leaves_the_cores_other_processes_keep_busy() -> None:
    threads, reason = resolve_threads("auto", None, cores=2, busy=1.02)
    assert threads == 1 and "1 busy with other processes" in reason
    assert resolve_threads("auto", None, cores=8, busy=2.6)[0] == 5
    assert resolve_threads("auto", None, cores=2, busy=0.3)[0] == 2  # background noise
    assert resolve_threads("auto", None, cores=2, busy=7.0)[0] == 1  # never below one
    # a sweep's jobs are not measured: they would count each other
    joblib = {"mode": "MULTIRUN", "launcher": {"n_jobs": 2}}
    assert resolve_threads("auto", joblib, cores=8, busy=6.0)[0] == 4
    assert resolve_threads(2, None, cores=2, busy=1.0)[0] == 2  # an explicit count is kept


def test_busy_cores_sees_a_busy_loop() -> None:
    import subprocess
    import sys

    from trmgym.threads import busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        assert busy_cores(0.5) >= 0.8
    finally:
        spinner.kill()
        spinner.wait()


def test_threads_set_torch_and_the_children_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "99")  # restored after the test
    try:
        reported = apply_threads(3)
        assert torch.get_num_threads() == 3 == reported["intra_op"]
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -1, 2.5, "abc", "2.5", True, None, [2]])
def test_bad_thread_values_are_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ValueError, match=r'run\.threads must be "auto" or an int >= 1, got '):
        check_threads(value)
    with pytest.raises(ValueError, match=r"run\.threads"):
        RunSettings(threads=value)


def test_thread_values_from_the_command_line(tmp_path: Path) -> None:
    assert check_threads("auto") == "auto" and check_threads("4") == 4 and check_threads(2) == 2
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config", overrides=["experiment=smoke", "run.threads=0.5"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    with pytest.raises(ValueError, match=r'run\.threads must be "auto" or an int >= 1, got 0\.5'):
        build_run(cfg, tmp_path / "run")


# -------------------------------------------------------------------------------- launchers
@pytest.mark.slow
def test_a_joblib_sweep_runs_in_parallel_and_is_resumable(tmp_path: Path) -> None:
    first = multirun(
        tmp_path, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        "hydra.sweep.dir=sweep",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "sweep"
    jobs = [sweep / JOB_DIR.format(seed=seed) for seed in (0, 1)]
    results = [json.loads((job / "results.json").read_text()) for job in jobs]
    assert [r["seed"] for r in results] == [0, 1]
    log = (jobs[0] / "cli.log").read_text()
    share = max(1, cores() // 2)
    assert f"threads: torch intra-op {share}," in log  # auto: the cores shared by two jobs
    assert f"{cores()} usable cores / 2 concurrent jobs" in log

    # job seed=1 is interrupted after its last checkpoint; seed=2's directory holds seed 0's run
    before = (jobs[0] / "results.json").read_bytes(), (jobs[0] / "results.json").stat().st_mtime_ns
    (jobs[1] / "results.json").unlink()
    shutil.copytree(jobs[0], sweep / JOB_DIR.format(seed=2))
    # job seed=0 was stopped after results.json, before its plots and report.html
    (jobs[0] / "report.html").unlink()
    shutil.rmtree(jobs[0] / "plots")
    again = multirun(tmp_path, "seed=0,1,2", "hydra.sweep.dir=sweep")  # one job at a time
    assert "job 0: already finished (results.json), skipped" in again.stdout
    assert "job 1: already finished" not in again.stdout
    after = (jobs[0] / "results.json").read_bytes(), (jobs[0] / "results.json").stat().st_mtime_ns
    assert after == before  # untouched
    assert (jobs[0] / "report.html").is_file() and (jobs[0] / "plots" / "curves.png").is_file()
    resumed = json.loads((jobs[1] / "results.json").read_text())
    assert resumed["accuracy_matrix"] == results[1]["accuracy_matrix"]  # from its checkpoint
    assert again.returncode == 1
    assert (
        f"trmgym run: job 2: {sweep / JOB_DIR.format(seed=2)} holds a run with a different "
        "configuration: seed was 0 there and is 2 now" in again.stderr
    )
    assert "Traceback" not in again.stderr


@pytest.mark.slow
def test_a_ray_sweep_runs_on_a_local_ray(tmp_path: Path) -> None:
    for module in ("ray", "hydra_plugins.hydra_ray_launcher"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install 'trmgym[ray]')")
    result = multirun(
        tmp_path, "seed=0,1", "run.threads=2", "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
        "hydra.sweep.dir=sweep",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (0, 1):
        job = tmp_path / "sweep" / JOB_DIR.format(seed=seed)
        assert json.loads((job / "results.json").read_text())["seed"] == seed
        # Ray gives a task OMP_NUM_THREADS=1; run.threads=2 is what torch uses
        log = (job / "cli.log").read_text()
        assert "threads: torch intra-op 2," in log and "OMP/MKL 2 (run.threads=2)" in log


def test_keys_under_a_swept_group_are_set_in_every_job() -> None:
    """``++`` only where the sweep's first configuration lacks the key: a sweep Hydra takes as
    it is keeps its overrides, and so its job directories' names."""
    from trmgym.startup import multirun_overrides, parse_command_line

    def rewritten(*argv: str) -> list[str]:
        return multirun_overrides(parse_command_line(["-m", *argv])[0], config_dir())

    assert rewritten(
        "curriculum=ramp,uniform", "curriculum.levels={blanks:[1,2]}", "seed=0,1",
        "curriculum.window=10,20", "+curriculum.x=1", "env=sudoku", "env.size=4",
    ) == [
        "curriculum=ramp,uniform", "++curriculum.levels={blanks:[1,2]}", "seed=0,1",
        "curriculum.window=10,20", "+curriculum.x=1", "env=sudoku", "env.size=4",
    ]  # fmt: skip
    # curriculum_maze chooses a curriculum itself: Hydra composes curriculum.patience already
    kept = ["experiment=curriculum_maze", "curriculum=ramp,lp", "curriculum.patience=640"]
    assert rewritten(*kept) == kept
    assert rewritten("strategy=naive,replay", "seed=0,1") == ["strategy=naive,replay", "seed=0,1"]


def test_a_sweep_over_a_group_with_one_of_its_keys_set_runs_every_job(tmp_path: Path) -> None:
    """Hydra alone refuses `curriculum=ramp,uniform curriculum.levels=...` ("Key 'levels' is not
    in struct", Hydra #283) though each job composes; trmgym runs both jobs with the levels."""
    done = multirun(
        tmp_path, "curriculum=ramp,uniform", "curriculum.levels={blanks:[1,2]}",
        "experiment=single_task", "env=sudoku", "env.size=4", "env.blanks=2", "run.threads=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted((tmp_path / "sweep").glob("*/results.json"))
    names = sorted(json.loads(r.read_text())["curriculum"]["name"] for r in runs)
    assert names == ["ramp", "uniform"]
    for run in runs:
        block = json.loads(run.read_text())["curriculum"]
        assert block["levels"] == [{"blanks": 1}, {"blanks": 2}]
    # a key that one swept option lacks is still refused before any job runs
    refused = multirun(
        tmp_path, "curriculum=ramp,rehearsal", "curriculum.levels={blanks:[1,2]}",
        "experiment=single_task", "env=sudoku", f"hydra.sweep.dir={tmp_path / 'no'}",
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "levels" in refused.stderr and not (tmp_path / "no").exists()
