"""Sweep reports: runs found at any depth, grouped by configuration, compared with rliable.

Every interval is checked against rliable called directly on the same score arrays with numpy's
global RNG seeded the same way (Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of
the Statistical Precipice", NeurIPS).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from rliable import library, metrics

from tests.core.test_report import METRICS, write_run
from trmgym.report import main, sweep_markdown, write_sweep_report
from trmgym.results import (
    DIVERGED_FILE,
    bootstrap_stats,
    find_runs,
    group_names,
    group_runs,
    improvement_probability,
    scan_runs,
    sweep_report,
    write_diverged,
)

REPS = 200  # small: each interval is a few hundred rliable replications


def no_nan(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"report.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


def rliable_mean_iqm(values: list[float], seed: int, reps: int = REPS) -> tuple:
    """Points and intervals of mean and IQM, straight from rliable."""
    scores = np.asarray(values, dtype=np.float64).reshape(-1, 1)

    def mean_and_iqm(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])

    np.random.seed(seed)
    points, intervals = library.get_interval_estimates({"s": scores}, mean_and_iqm, reps=reps)
    return points["s"], intervals["s"]


def write_seeds(folder: Path, strategy: str, accuracies: list[float]) -> None:
    """One run per accuracy, seeds 0, 1, ..., in ``folder/<strategy>_<seed>``."""
    for seed, accuracy in enumerate(accuracies):
        metrics_ = {**METRICS, "avg_accuracy": accuracy}
        write_run(folder / f"{strategy}_{seed}", seed=seed, strategy=strategy, metrics=metrics_)


def write_overrides(run: Path, *overrides: str) -> None:
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


# ----------------------------------------------------------------------------------- finding
def test_runs_at_depths_1_3_5_are_found_and_broken_ones_skipped(tmp_path: Path) -> None:
    shallow = write_run(tmp_path / "a", seed=1)
    middle = write_run(tmp_path / "x" / "y" / "b", seed=2)
    deep = write_run(tmp_path / "runs" / "exp" / "multirun" / "2024-01-01_00-00-00" / "0", seed=3)
    # a run's own subfolders are not searched: this copy is not a run of the sweep
    write_run(shallow / "checkpoints" / "old", seed=99)
    broken = tmp_path / "runs" / "exp" / "multirun" / "2024-01-01_00-00-00" / "1"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    no_metrics = tmp_path / "x" / "no_metrics"
    no_metrics.mkdir()
    (no_metrics / "results.json").write_text(json.dumps({"sequence": ["a"], "seed": 0}))
    bad_metric = write_run(tmp_path / "x" / "bad_metric", metrics={**METRICS, "bwt": "high"})
    assert find_runs(tmp_path) == [
        shallow,
        tmp_path / "runs" / "exp" / "multirun" / "2024-01-01_00-00-00" / "0",
        broken,
        bad_metric,
        no_metrics,
        middle,
    ]
    loaded, skipped, n_found = scan_runs([tmp_path])
    assert n_found == 6
    assert [path.parent for path, _ in loaded] == [shallow, deep, middle]
    reasons = {item["path"]: item["reason"] for item in skipped}
    assert reasons.keys() == {str(d / "results.json") for d in (broken, no_metrics, bad_metric)}
    assert reasons[str(broken / "results.json")].startswith("not valid JSON")
    assert (
        "missing key(s) ['strategy', 'accuracy_matrix', 'metrics']"
        in reasons[str(no_metrics / "results.json")]
    )
    assert reasons[str(bad_metric / "results.json")] == (
        "metrics.bwt must be a finite number or null, got 'high'"
    )


def test_the_cli_lists_what_it_skipped_and_still_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "runs" / "exp" / "multirun" / "ts"
    write_seeds(sweep, "naive", [0.2, 0.3])
    (sweep / "9").mkdir()
    (sweep / "9" / "results.json").write_text("[1, 2]")
    assert main([str(tmp_path / "runs"), "--reps", "20"]) == 0
    out = capsys.readouterr().out
    assert f"found 3 results.json below {tmp_path / 'runs'}: 2 read, 1 skipped" in out
    assert f"skipped {sweep / '9' / 'results.json'}: results must be a JSON object" in out
    header = (
        "| group | n | avg_accuracy (higher is better) | avg_forgetting (lower is better) "
        "| bwt (higher is better) | fwt (higher is better) |"
    )
    assert header in out
    assert re.search(r"\| strategy=naive \| 2 \| 0\.250 \[0\.2\d\d, 0\.[23]\d\d\] \| 0\.250 ", out)
    assert f"report: {tmp_path / 'runs' / 'report.json'}" in out
    saved = no_nan((tmp_path / "runs" / "report.json").read_text())
    assert saved["n_found"] == 3 and saved["n_read"] == 2
    assert saved["skipped"] == [
        {
            "path": str(sweep / "9" / "results.json"),
            "reason": "results must be a JSON object, got list",
        }
    ]


# ---------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("values", [[0.1, 0.5, 0.3], [0.1, 0.5, 0.3, 0.9, 0.2, 0.45]])
def test_mean_iqm_and_intervals_equal_rliable_directly(values: list[float]) -> None:
    stats = bootstrap_stats(values, reps=REPS, seed=3)
    points, intervals = rliable_mean_iqm(values, seed=3)
    assert stats["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert stats["mean"] == pytest.approx(points[0], abs=1e-12)
    assert stats["iqm"] == pytest.approx(points[1], abs=1e-12)
    assert stats["ci95"] == pytest.approx(list(intervals[:, 0]), abs=1e-12)
    assert stats["iqm_ci95"] == pytest.approx(list(intervals[:, 1]), abs=1e-12)
    assert stats["ci95"][0] < stats["mean"] < stats["ci95"][1]
    if len(values) == 6:  # the IQM trims one run per end: 0.1 and 0.9
        assert stats["iqm"] == pytest.approx(np.mean([0.2, 0.3, 0.45, 0.5]))


def test_intervals_are_seeded_and_leave_numpy_random_alone() -> None:
    values = [0.13, 0.52, 0.31, 0.97, 0.05, 0.77]
    np.random.seed(11)
    expected = np.random.rand(3)
    np.random.seed(11)
    first = bootstrap_stats(values, reps=REPS, seed=0)
    assert np.array_equal(np.random.rand(3), expected)  # the caller's stream goes on unchanged
    assert bootstrap_stats(values, reps=REPS, seed=0) == first
    assert bootstrap_stats(values, reps=REPS, seed=1)["ci95"] != first["ci95"]
    with pytest.raises(ValueError, match="reps must be an int >= 1, got 0"):
        bootstrap_stats(values, reps=0)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        bootstrap_stats(values, seed=-1)


def test_sweep_report_matches_rliable_per_group_and_is_deterministic(tmp_path: Path) -> None:
    naive, ewc = [0.2, 0.3, 0.25, 0.1], [0.6, 0.7, 0.65]
    write_seeds(tmp_path / "sweep", "naive", naive)
    write_seeds(tmp_path / "sweep", "ewc", ewc)
    report = sweep_report([tmp_path], reps=REPS, seed=5)
    assert list(report["groups"]) == ["strategy=ewc", "strategy=naive"]
    for name, values in (("strategy=naive", naive), ("strategy=ewc", ewc)):
        stats = report["groups"][name]["metrics"]["avg_accuracy"]
        points, intervals = rliable_mean_iqm(values, seed=5)
        assert stats["values"] == pytest.approx(values)
        assert stats["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert stats["iqm"] == pytest.approx(points[1], abs=1e-12)
        assert stats["ci95"] == pytest.approx(list(intervals[:, 0]), abs=1e-12)
        assert stats["iqm_ci95"] == pytest.approx(list(intervals[:, 1]), abs=1e-12)
        assert stats["better"] == "higher"
    forgetting = report["groups"]["strategy=naive"]["metrics"]["avg_forgetting"]
    assert forgetting["better"] == "lower" and forgetting["mean"] == pytest.approx(0.25)
    _, first = write_sweep_report([tmp_path], reps=REPS, seed=5)
    text = first.read_text()
    _, again = write_sweep_report([tmp_path], reps=REPS, seed=5)
    assert again == tmp_path / "report.json" and again.read_text() == text


# ---------------------------------------------------------------------------------- grouping
def test_seeds_form_one_group_and_a_strategy_another(tmp_path: Path) -> None:
    write_seeds(tmp_path / "ts", "naive", [0.1, 0.2, 0.3])
    write_seeds(tmp_path / "ts", "replay", [0.5, 0.6])
    report = sweep_report([tmp_path], reps=20)
    assert {name: group["n_runs"] for name, group in report["groups"].items()} == {
        "strategy=naive": 3,
        "strategy=replay": 2,
    }
    naive = report["groups"]["strategy=naive"]
    assert naive["seeds"] == [0, 1, 2] and naive["config"] == {"strategy": "naive"}
    assert naive["runs"] == [str(tmp_path / "ts" / f"naive_{k}") for k in range(3)]


def test_group_names_use_differing_overrides_and_are_deterministic(tmp_path: Path) -> None:
    for k, (strategy, batch) in enumerate([("replay", 64), ("replay", 8), ("naive", 8)] * 2):
        settings = {"train_steps": 30, "eval_every": 10, "batch_size": batch}
        run = write_run(tmp_path / str(k), seed=k, strategy=strategy, settings=settings)
        write_overrides(run, "experiment=quick", f"run.batch_size={batch}", f"strategy={strategy}")
    loaded, _, _ = scan_runs([tmp_path])
    groups = group_runs(loaded)
    names = [name for name, _ in group_names(groups)]
    # the shared override (experiment=quick) is left out; the strategy comes first
    assert names == [
        "strategy=replay,run.batch_size=64",
        "strategy=replay,run.batch_size=8",
        "strategy=naive,run.batch_size=8",
    ]
    assert [name for name, _ in group_names(groups[::-1])] == names[::-1]
    assert group_names(groups)[0][1] == {"strategy": "replay", "run.batch_size": "64"}
    report = sweep_report([tmp_path], reps=20)
    assert list(report["groups"]) == [names[2], names[1], names[0]]  # 8 before 64
    assert all(group["n_runs"] == 2 for group in report["groups"].values())


def test_groups_without_overrides_are_named_by_the_config_keys_that_differ(
    tmp_path: Path,
) -> None:
    for k, batch in enumerate([4, 64, 4]):
        settings = {"train_steps": 30, "eval_every": 10, "batch_size": batch}
        write_run(tmp_path / str(k), seed=k, settings=settings)
    report = sweep_report([tmp_path], reps=20)
    assert {name: group["n_runs"] for name, group in report["groups"].items()} == {
        "strategy=naive,settings.batch_size=4": 2,
        "strategy=naive,settings.batch_size=64": 1,
    }


def test_one_configuration_spelled_differently_is_one_group(tmp_path: Path) -> None:
    """Grouping reads what runs recorded, not how their command lines spelled it: override
    order, ``++``, a level grid or list, and ``curriculum_comparison.workers`` (which changes no
    number) never split seeds of one configuration."""
    ramp = "trmgym.curricula.schedulers.DifficultyRamp"
    levels = [{"blanks": 1}, {"blanks": 2}]
    spellings = [
        ({"blanks": [1, 2]}, ["curriculum=ramp", "curriculum.levels={blanks:[1,2]}"]),
        ({"blanks": [1, 2]}, ["curriculum.levels={blanks:[1,2]}", "curriculum=ramp"]),
        (levels, ["curriculum=ramp", "++curriculum.levels=[{blanks:1},{blanks:2}]"]),
        (levels, ["curriculum=ramp", "curriculum_comparison={against:[uniform],workers:1}"]),
    ]
    for seed, (written, overrides) in enumerate(spellings):
        plugins = [{"name": "curriculum", "class": ramp, "config": {"levels": written}}]
        curriculum = {"name": "ramp", "levels": levels, "level_names": ["1", "2"]}
        run = write_run(tmp_path / str(seed), seed=seed, plugins=plugins, curriculum=curriculum)
        write_overrides(run, *overrides)
    other = [{"name": "curriculum", "class": ramp, "config": {"levels": {"blanks": [1, 3]}}}]
    run = write_run(
        tmp_path / "other",
        seed=0,
        plugins=other,
        curriculum={"name": "ramp", "levels": [{"blanks": 1}, {"blanks": 3}]},
    )
    write_overrides(run, "curriculum=ramp", "curriculum.levels={blanks:[1,3]}")
    loaded, _, _ = scan_runs([tmp_path])
    groups = group_runs(loaded)
    assert [len(group["runs"]) for group in groups] == [4, 1]
    assert [r["seed"] for _, r in groups[0]["runs"]] == [0, 1, 2, 3]
    report = sweep_report([tmp_path], reps=20)
    assert sorted(group["n_runs"] for group in report["groups"].values()) == [1, 4]


# ------------------------------------------------------------------- probability of improvement
def test_probability_of_improvement_matches_rliable(tmp_path: Path) -> None:
    better, worse = [0.7, 0.8, 0.6, 0.75], [0.5, 0.65, 0.4]
    write_seeds(tmp_path, "ewc", better)
    write_seeds(tmp_path, "naive", worse)
    report = sweep_report([tmp_path], reps=REPS, seed=2)
    poi = report["probability_of_improvement"]
    assert poi["metric"] == "avg_accuracy" and poi["better"] == "higher"
    [pair] = poi["pairs"]
    assert (pair["x"], pair["y"], pair["n_x"], pair["n_y"]) == (
        "strategy=ewc",
        "strategy=naive",
        4,
        3,
    )
    x, y = np.array(better).reshape(-1, 1), np.array(worse).reshape(-1, 1)
    assert pair["p_x_better"] == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    assert pair["p_x_better"] == pytest.approx(11.0 / 12.0)  # 11 of the 12 pairs: 0.6 < 0.65 only
    np.random.seed(2)
    _, intervals = library.get_interval_estimates(
        {"p": [x, y]}, metrics.probability_of_improvement, reps=REPS
    )
    assert pair["ci95"] == pytest.approx(list(intervals["p"].reshape(2)), abs=1e-12)
    assert pair["p_x_better"] > 0.5
    reverse = improvement_probability(worse, better, reps=REPS, seed=2)
    assert reverse["p_x_better"] == pytest.approx(1.0 - pair["p_x_better"])
    assert improvement_probability([None, None], better)["p_x_better"] is None
    one = improvement_probability([0.9], better, reps=REPS)
    assert one["p_x_better"] == pytest.approx(1.0) and one["ci95"] is None


def test_above_eight_groups_only_strategy_pairs_are_compared(tmp_path: Path) -> None:
    k = 0
    for batch in (4, 8, 16):
        for strategy in ("naive", "replay", "ewc"):
            for seed in range(2):
                settings = {"train_steps": 30, "eval_every": 10, "batch_size": batch}
                run = write_run(tmp_path / str(k), seed=seed, strategy=strategy, settings=settings)
                write_overrides(run, f"strategy={strategy}", f"run.batch_size={batch}")
                k += 1
    report = sweep_report([tmp_path], reps=5)
    assert len(report["groups"]) == 9
    pairs = [(p["x"], p["y"]) for p in report["probability_of_improvement"]["pairs"]]
    assert len(pairs) == 9  # 3 batch sizes x 3 strategy pairs, not 36
    assert all(x.split(",")[1] == y.split(",")[1] for x, y in pairs)


# ------------------------------------------------------------------------------ undefined
def test_null_metrics_are_left_out_and_report_json_has_no_nan(tmp_path: Path) -> None:
    for seed, fwt in enumerate([None, 0.2, 0.4]):
        metrics_ = {**METRICS, "fwt": fwt, "bwt": None}
        write_run(tmp_path / "sweep" / str(seed), seed=seed, metrics=metrics_)
    _, path = write_sweep_report([tmp_path / "sweep"], reps=REPS, seed=0)
    saved = no_nan(path.read_text())
    [group] = saved["groups"].values()
    fwt, bwt = group["metrics"]["fwt"], group["metrics"]["bwt"]
    assert fwt["values"] == [None, 0.2, 0.4] and fwt["n_defined"] == 2 and fwt["n_undefined"] == 1
    assert fwt["mean"] == pytest.approx(0.3)  # not (0 + 0.2 + 0.4) / 3
    points, intervals = rliable_mean_iqm([0.2, 0.4], seed=0)
    assert fwt["ci95"] == pytest.approx(list(intervals[:, 0]), abs=1e-12)
    assert bwt == {
        "better": "higher",
        "mean": None,
        "ci95": None,
        "iqm": None,
        "iqm_ci95": None,
        "n_defined": 0,
        "n_undefined": 3,
        "values": [None, None, None],
    }
    text = sweep_markdown(saved)
    assert "| 0.300 [" in text and "(1 null)" in text and "| n/a |" in text
    assert "n/a: BWT needs at least 2 tasks" in text


# ------------------------------------------------------------------------------------ HTML
def test_sweep_report_html_is_self_contained(tmp_path: Path) -> None:
    write_seeds(tmp_path / "m", "ewc", [0.7, 0.8])
    write_seeds(tmp_path / "m", "naive", [0.2, 0.3])
    (tmp_path / "m" / "junk").mkdir()
    (tmp_path / "m" / "junk" / "results.json").write_text("{")
    assert main([str(tmp_path / "m"), "--reps", "20"]) == 0
    text = (tmp_path / "m" / "report.html").read_text(encoding="utf-8")
    for expected in (
        "<h2>strategy=ewc</h2>",
        "<h2>strategy=naive</h2>",
        "avg_forgetting (lower is better)",
        "Probability of improvement on avg_accuracy (higher is better)",
        "<td>strategy=ewc</td><td>strategy=naive</td><td>1.000</td>",
        "Mean accuracy matrix",
        "&lt;script&gt;alert(1)&lt;/script&gt;",  # a task name, escaped
        str(tmp_path / "m" / "junk" / "results.json"),
        "Statistical Precipice",
    ):
        assert expected in text, expected
    assert not re.search(r"<(link|script|iframe|img)\b", text) and "http" not in text


def test_a_single_run_directory_still_gets_its_report_html(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = write_run(tmp_path / "run")
    assert main([str(run)]) == 0
    assert "demo · naive · seed 7" in (run / "report.html").read_text(encoding="utf-8")
    assert (run / "plots" / "accuracy_matrix.png").is_file()
    assert not (run / "report.json").exists()
    assert "avg_accuracy" in capsys.readouterr().out


def test_several_folders_report_into_the_first_and_runs_count_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_seeds(tmp_path / "one", "naive", [0.2, 0.3])
    write_seeds(tmp_path / "two", "replay", [0.6])
    args = [str(tmp_path / "one"), str(tmp_path / "two"), str(tmp_path / "one"), "--reps", "20"]
    assert main(args) == 0
    saved = no_nan((tmp_path / "one" / "report.json").read_text())
    assert saved["n_found"] == 3 and set(saved["groups"]) == {"strategy=naive", "strategy=replay"}
    assert f"report: {tmp_path / 'one' / 'report.json'}" in capsys.readouterr().out
    # two run directories: the report goes to their parent, not over a run's own report.html
    runs = [tmp_path / "one" / "naive_0", tmp_path / "one" / "naive_1"]
    assert main([*map(str, runs), "--reps", "20"]) == 0
    assert (tmp_path / "one" / "report.json").is_file()
    assert not (runs[0] / "report.html").exists()


def test_runs_differing_only_in_threads_or_seed_form_one_group(tmp_path: Path) -> None:
    from tests.core.test_report import make_results

    settings = make_results()["settings"]
    for seed, threads in enumerate([1, 2, "auto"]):
        run = write_run(tmp_path / str(seed), seed=seed, settings={**settings, "threads": threads})
        write_overrides(run, f"seed={seed}", f"run.threads={threads}")
    report = sweep_report([tmp_path], reps=20)
    assert [group["n_runs"] for group in report["groups"].values()] == [3]


def test_a_seed_run_twice_counts_once_and_the_repeat_is_listed(tmp_path: Path) -> None:
    # the same grid point under two launchers: identical seeds in one group
    write_seeds(tmp_path / "joblib", "naive", [0.1, 0.2, 0.3])
    write_seeds(tmp_path / "ray", "naive", [0.1, 0.2])
    report = sweep_report([tmp_path], reps=20)
    group = report["groups"]["strategy=naive"]
    assert group["n_runs"] == 3 and group["seeds"] == [0, 1, 2]
    assert group["metrics"]["avg_accuracy"]["values"] == [0.1, 0.2, 0.3]
    assert group["metrics"]["avg_accuracy"]["mean"] == pytest.approx(0.2)
    repeats = [s for s in report["skipped"] if "repeats" in s["reason"]]
    assert [Path(s["path"]).parent.name for s in repeats] == ["naive_0", "naive_1"]
    assert all(str(tmp_path / "ray") in s["path"] for s in repeats)
    assert "seed 0 repeats" in repeats[0]["reason"] and "strategy=naive" in repeats[0]["reason"]
    assert report["n_read"] == 5 and report["n_repeats"] == 2
    assert sweep_markdown(report).splitlines()[0] == (
        "found 5 results.json: 5 read, 0 skipped, 2 repeated seeds left out"
    )


# ------------------------------------------------------------------ curriculum comparisons
def write_comparisons(
    folder: Path, steps: list[tuple[int | None, int | None]], upper: bool = False
) -> None:
    """Runs of one group comparing ramp with uniform, seeds 0, 1, ...: ``(ramp, uniform)``
    env steps to 0.8 per seed (None: never within the 1,000-step budget). ``upper``: as
    written now, with ``upper_bound`` (a seed the ramp never reached gets uniform / budget);
    else as written before upper bounds were recorded (such a seed's speedup null)."""
    for seed, (ramp, uniform) in enumerate(steps):
        speedup = None
        if ramp is not None:
            bound = uniform is None
            speedup = {"ratio": (1000 if bound else uniform) / ramp, "lower_bound": bound}
            if upper:
                speedup["upper_bound"] = False
        elif upper and uniform is not None:
            speedup = {"ratio": uniform / 1000, "lower_bound": False, "upper_bound": True}
        block = {
            "name": "ramp",
            "threshold": 0.8,
            "budget_env_steps": 1000,
            "steps_to_threshold": {"ramp": ramp, "uniform": uniform},
            "speedup": {"uniform": speedup},
        }
        write_run(folder / f"s{seed}", seed=seed, curriculum=block)


def test_curriculum_speedups_are_pooled_over_seeds_with_rliable_intervals(tmp_path: Path) -> None:
    """uniform/ramp per seed, pooled as any metric (mean, IQM, 95% stratified bootstrap); a
    seed where uniform never got there counts at its lower bound (steps: the budget) and is
    marked; a speedup where the ramp never did is undefined, left out and counted — never a 0
    or an infinity."""
    write_comparisons(tmp_path, [(400, 600), (500, 500), (250, None), (None, 700), (800, 400)])
    report = sweep_report([tmp_path], reps=REPS, seed=3)
    (group,) = report["groups"].values()
    pooled = group["curriculum_comparison"]
    assert pooled["main"] == "ramp" and pooled["threshold"] == 0.8
    speedup = pooled["speedup"]["uniform"]
    ratios = [1.5, 1.0, 4.0, 0.5]  # 1000 / 250 for the seed uniform never reached
    assert speedup["values"] == [1.5, 1.0, 4.0, None, 0.5]
    assert speedup["lower_bound"] == [False, False, True, None, False]
    assert speedup["n_lower_bound"] == 1
    assert (speedup["n_defined"], speedup["n_undefined"]) == (4, 1)
    (mean, iqm), intervals = rliable_mean_iqm(ratios, seed=3)
    assert speedup["mean"] == pytest.approx(mean) == pytest.approx(np.mean(ratios))
    assert speedup["iqm"] == pytest.approx(iqm)
    assert speedup["ci95"] == pytest.approx(list(intervals[:, 0]))
    steps = pooled["steps_to_threshold"]
    assert steps["ramp"]["values"] == [400, 500, 250, 1000, 800]  # never: at the budget
    assert steps["ramp"]["lower_bound"] == [False, False, False, True, False]
    assert steps["uniform"]["values"] == [600, 500, 1000, 700, 400]
    assert (
        steps["uniform"]["mean"] == pytest.approx(640.0) and steps["uniform"]["n_lower_bound"] == 1
    )
    markdown = sweep_markdown(report)
    assert "| speedup uniform / ramp to 0.8 | ≥ 1.750 [" in markdown
    assert "1.50; 1.00; ≥4.00; n/a; 0.50 |" in markdown and "(1 null)" in markdown
    assert "| ramp: env steps to 0.8 | ≥ 590 [" in markdown  # env steps: whole numbers
    assert "| 400; 500; 250; ≥1,000; 800 |" in markdown
    assert "never reached the threshold within its budget" in markdown
    iqm_cell = next(line for line in markdown.splitlines() if "speedup uniform" in line)
    assert iqm_cell.split(" | ")[4].startswith("≥ ")  # the IQM is a bound too
    _, written = write_sweep_report([tmp_path], reps=REPS)
    html_text = written.with_name("report.html").read_text()
    pooled_at = html_text.index("Curriculum comparison, pooled over the seeds")
    assert pooled_at < html_text.index("Mean accuracy matrix") and "≥4.00" in html_text


def test_a_seed_the_main_curriculum_never_reached_counts_as_an_upper_bound(
    tmp_path: Path,
) -> None:
    """Dropping the seeds where the main curriculum failed would favour it: they count at
    other / the main's budget, marked ≤, and make the pooled mean an upper bound; lower and upper
    bounds in one pool bound nothing, so that pool gets no value (the per-run values stay)."""
    write_comparisons(tmp_path / "up", [(400, 600), (None, 700), (None, 500)], upper=True)
    write_comparisons(tmp_path / "mixed", [(400, None), (None, 700), (500, 500)], upper=True)
    groups = sweep_report([tmp_path / "up"], reps=REPS, seed=3)["groups"]
    (group,) = groups.values()
    speedup = group["curriculum_comparison"]["speedup"]["uniform"]
    assert speedup["values"] == [1.5, 0.7, 0.5]  # 700 / 1000 and 500 / 1000: at most
    assert speedup["upper_bound"] == [False, True, True] and speedup["n_upper_bound"] == 2
    assert speedup["mean"] == pytest.approx(0.9) and not speedup["mixed_bounds"]
    report = sweep_report([tmp_path / "up"], reps=REPS, seed=3)
    markdown = sweep_markdown(report)
    assert "| speedup uniform / ramp to 0.8 | ≤ 0.900 [" in markdown
    assert "| 1.50; ≤0.70; ≤0.50 |" in markdown
    assert "≤: where the main curriculum never reached the threshold" in markdown
    report = sweep_report([tmp_path / "mixed"], reps=REPS, seed=3)
    (group,) = report["groups"].values()
    speedup = group["curriculum_comparison"]["speedup"]["uniform"]
    assert speedup["values"] == [2.5, 0.7, 1.0] and speedup["mixed_bounds"]
    assert speedup["mean"] is None and speedup["iqm"] is None and speedup["ci95"] is None
    markdown = sweep_markdown(report)
    row = next(line for line in markdown.splitlines() if "speedup uniform" in line)
    assert "| n/a (bounds both ways) | n/a (bounds both ways) | ≥2.50; ≤0.70; 1.00 |" in row


def test_comparisons_at_other_thresholds_or_without_one_are_not_pooled_together(
    tmp_path: Path,
) -> None:
    """Speedups to 0.8 and to 0.9 are different quantities: separate groups, and so are runs
    that compare nothing (not seeds whose main curriculum "never reached" it)."""
    write_comparisons(tmp_path / "a", [(400, 600), (500, 500)])
    write_comparisons(tmp_path / "b", [(400, 800), (500, 900)])
    for run in (tmp_path / "b").iterdir():
        results = json.loads((run / "results.json").read_text())
        results["curriculum"]["threshold"] = 0.9
        (run / "results.json").write_text(json.dumps(results))
    write_seeds(tmp_path / "c", "naive", [0.5, 0.6])
    groups = sweep_report([tmp_path], reps=REPS)["groups"]
    assert len(groups) == 3
    pooled = sorted(
        (
            g["curriculum_comparison"]["threshold"],
            g["curriculum_comparison"]["speedup"]["uniform"]["values"],
        )
        for g in groups.values()
        if "curriculum_comparison" in g
    )
    assert pooled == [(0.8, [1.5, 1.0]), (0.9, [2.0, 1.8])]
    plain = [g for g in groups.values() if "curriculum_comparison" not in g]
    assert [g["n_runs"] for g in plain] == [2]


def test_runs_without_a_comparison_have_no_pooled_block(tmp_path: Path) -> None:
    write_seeds(tmp_path, "naive", [0.5, 0.6])
    (group,) = sweep_report([tmp_path], reps=REPS)["groups"].values()
    assert "curriculum_comparison" not in group
    assert "speedup" not in sweep_markdown(sweep_report([tmp_path], reps=REPS))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"speedup": {"uniform": {"ratio": float("inf"), "lower_bound": False}}},
         "curriculum.speedup.uniform must be null or"),
        ({"speedup": {"uniform": {"ratio": 1.2}}}, "curriculum.speedup.uniform must be null or"),
        ({"speedup": {"uniform": 1.2}}, "curriculum.speedup.uniform must be null or"),
        ({"steps_to_threshold": {"ramp": 0, "uniform": 5}},
         "curriculum.steps_to_threshold.ramp must be an int >= 1 or null, got 0"),
        ({"steps_to_threshold": {"ramp": 2.5, "uniform": 5}},
         "curriculum.steps_to_threshold.ramp must be an int >= 1 or null, got 2.5"),
        ({"threshold": "0.8"}, "curriculum.threshold must be a number in (0, 1], got '0.8'"),
        ({"threshold": float("nan")}, "curriculum.threshold must be a number in (0, 1], got nan"),
        ({"threshold": 5.0}, "curriculum.threshold must be a number in (0, 1], got 5.0"),
        ({"threshold": -0.5}, "curriculum.threshold must be a number in (0, 1], got -0.5"),
        ({"name": None}, "curriculum.name must name the main curriculum, got None"),
        ({"budget_env_steps": 0}, "curriculum.budget_env_steps must be an int >= 1, got 0"),
        ({"speedup": {"uni\nform": None}}, "curriculum names must be one-line strings"),
    ],
)  # fmt: skip
def test_a_malformed_comparison_is_skipped_with_its_reason(
    tmp_path: Path, change: dict, message: str
) -> None:
    write_comparisons(tmp_path, [(400, 600), (500, 500)])
    bad = json.loads((tmp_path / "s1" / "results.json").read_text())
    bad["curriculum"].update(change)
    (tmp_path / "s1" / "results.json").write_text(json.dumps(bad))
    report = sweep_report([tmp_path], reps=REPS)
    assert report["n_read"] == 1
    (skipped,) = report["skipped"]
    assert skipped["path"] == str(tmp_path / "s1" / "results.json")
    assert message in skipped["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reps", "0"], "argument --reps: must be an int >= 1, got '0'"),
        (["--reps", "1.5"], "argument --reps: must be an int >= 1, got '1.5'"),
        (["--seed", "-1"], "argument --seed: must be an int >= 0, got '-1'"),
    ],
)
def test_bad_bootstrap_arguments_are_refused_before_anything_is_read(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_seeds(tmp_path, "naive", [0.1, 0.2])
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "replications per interval" not in err
    assert not (tmp_path / "report.json").exists()


def test_groups_differing_in_a_plugin_are_named_by_its_readable_keys(tmp_path: Path) -> None:
    for k, kind in enumerate(["Uniform", "PLR"]):
        plugins = [{"name": "curriculum", "class": f"trmgym.curricula.schedulers.{kind}"}]
        write_run(tmp_path / kind, seed=k, plugins=plugins)
    names = [name for name, _ in group_names(group_runs(scan_runs([tmp_path])[0]))]
    assert sorted(names) == [
        "strategy=naive,plugins.curriculum.class=trmgym.curricula.schedulers.PLR",
        "strategy=naive,plugins.curriculum.class=trmgym.curricula.schedulers.Uniform",
    ]


def test_an_unfinished_seed_is_named_not_silently_missing(tmp_path: Path) -> None:
    """A sweep job interrupted before results.json (a checkpoint only) is in no group: the report
    says so, so a 2-of-3-seed group does not pass for the whole sweep."""
    write_seeds(tmp_path, "naive", [0.5, 0.6])
    unfinished = tmp_path / "naive_2"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "checkpoints" / "last.pt").write_bytes(b"x")
    # its compared curriculum finished first (workers=1): part of it, not a run of its own
    write_run(unfinished / "compare" / "uniform", seed=2, strategy="naive")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)  # no checkpoint yet: not a run
    report = sweep_report([tmp_path], reps=REPS)
    assert report["unfinished"] == [str(unfinished)]
    (group,) = report["groups"].values()
    assert group["n_runs"] == 2 and report["n_read"] == 2
    markdown = sweep_markdown(report)
    assert f"unfinished {unfinished}: a checkpoint but no results.json" in markdown
    _, written = write_sweep_report([tmp_path], reps=REPS)
    assert "1 unfinished run(s)" in written.with_name("report.html").read_text()


def test_a_diverged_run_is_named_with_its_reason_not_called_resumable(tmp_path: Path) -> None:
    """diverged.json marks a run whose training diverged: listed with its message apart from
    the resumable ones, even when it diverged before its first checkpoint."""
    write_seeds(tmp_path, "naive", [0.5, 0.6])
    early = tmp_path / "naive_2"  # diverged in its first chunk: no checkpoint at all
    early.mkdir()
    write_diverged(early, {"task": 0, "chunk": 0, "message": "training diverged: lr too high"})
    late = tmp_path / "naive_3"  # diverged later: a checkpoint from before it
    (late / "checkpoints").mkdir(parents=True)
    (late / "checkpoints" / "last.pt").write_bytes(b"x")
    (late / DIVERGED_FILE).write_text("{not json")
    report = sweep_report([tmp_path], reps=REPS)
    assert report["unfinished"] == []
    assert report["diverged"] == [
        {"path": str(early), "message": "training diverged: lr too high"},
        {"path": str(late), "message": report["diverged"][1]["message"]},
    ]
    assert report["diverged"][1]["message"].startswith("diverged.json unreadable")
    markdown = sweep_markdown(report)
    assert f"diverged {early}: training diverged: lr too high (resuming repeats it)" in markdown
    _, written = write_sweep_report([tmp_path], reps=REPS)
    assert "2 run(s) whose training diverged" in written.with_name("report.html").read_text()


def test_a_folder_of_only_stopped_runs_says_which_they_are(tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    (cut / "checkpoints").mkdir(parents=True)
    (cut / "checkpoints" / "last.pt").write_bytes(b"x")
    (tmp_path / "nan").mkdir()
    write_diverged(tmp_path / "nan", {"message": "training diverged: NaN"})
    with pytest.raises(ValueError) as refused:
        write_sweep_report([tmp_path], reps=REPS)
    assert str(refused.value) == (
        f"{tmp_path}: no readable results.json at any depth; unfinished {cut} (the same command "
        f"resumes it); diverged {tmp_path / 'nan'} (training diverged: NaN)"
    )


def test_a_pooled_run_whose_metrics_disagree_with_its_matrix_is_flagged(tmp_path: Path) -> None:
    """`trmgym report <run>` recomputes the metrics from the matrix; a sweep report does the same
    for every run it pools, so one edited or corrupt results.json does not pass unseen."""
    write_run(tmp_path / "naive_0", seed=0)
    edited = write_run(tmp_path / "naive_1", seed=1, metrics={**METRICS, "bwt": 0.5})
    report = sweep_report([tmp_path], reps=REPS)
    assert report["mismatches"] == [
        {
            "path": str(edited),
            "metric": "bwt",
            "stored": 0.5,
            "recomputed": pytest.approx(METRICS["bwt"], abs=1e-12),
        }
    ]
    (group,) = report["groups"].values()
    assert group["metrics"]["bwt"]["values"] == [METRICS["bwt"], 0.5]  # stored values pooled
    assert (
        f"mismatch {edited}: bwt stored 0.500000, recomputed from its accuracy matrix -0.250000 (the "
        "stored value is pooled)" in sweep_markdown(report)
    )
    _, written = write_sweep_report([tmp_path], reps=REPS)
    page = written.with_name("report.html").read_text()
    assert f"{edited}: bwt stored 0.5000, recomputed -0.2500" in page
    assert json.loads(written.read_text())["mismatches"] == report["mismatches"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"accuracy_matrix": [[1.5, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.7, 0.95]]},
            "its metrics cannot be recomputed: accuracy_matrix values must lie in [0, 1], got 1.5",
        ),
        (
            {"accuracy_matrix": [[0.9, 0.0, 0.0], [None, 0.8, 0.0], [0.5, 0.7, 0.95]]},
            "its metrics cannot be recomputed:",
        ),
        ({"random_init_accuracy": [0.0]}, "its metrics cannot be recomputed:"),
        ({"seed": "zero"}, "'seed' must be an int >= 0, got 'zero'"),
        ({"seed": None}, "'seed' must be an int >= 0, got None"),
        ({"seed": 1.0}, "'seed' must be an int >= 0, got 1.0"),
        ({"seed": True}, "'seed' must be an int >= 0, got True"),
    ],
)
def test_a_run_the_report_cannot_check_is_skipped_with_its_reason_not_pooled(
    tmp_path: Path, changes: dict, reason: str
) -> None:
    """The single-run report said "could not recompute the metrics"; the sweep report pooled
    such runs' stored numbers (and averaged a 1.5 into the mean matrix) in silence."""
    write_run(tmp_path / "good", seed=0)
    bad = write_run(tmp_path / "bad", **changes)
    report = sweep_report([tmp_path], reps=REPS)
    assert report["n_read"] == 1
    (skipped,) = report["skipped"]
    assert skipped["path"] == str(bad / "results.json")
    assert skipped["reason"].startswith(reason), skipped["reason"]


def test_a_strategy_every_group_sets_by_override_still_names_the_groups(tmp_path: Path) -> None:
    """`trmgym run -m strategy=replay seed=0,1` plus one run with strategy.mix_ratio=1.0: the
    shared `strategy=replay` override was dropped as shared, leaving the first group unnamed."""
    replay = {"name": "replay", "mix_ratio": 0.5}
    for seed in (0, 1):
        run = write_run(tmp_path / f"r{seed}", seed=seed, strategy="replay", strategy_config=replay)
        write_overrides(run, "strategy=replay", f"seed={seed}")
    mixed = {"name": "replay", "mix_ratio": 1.0}
    extra = write_run(tmp_path / "mix", seed=0, strategy="replay", strategy_config=mixed)
    write_overrides(extra, "strategy=replay", "strategy.mix_ratio=1.0", "seed=0")
    names = [name for name, _ in group_names(group_runs(scan_runs([tmp_path])[0]))]
    assert sorted(names) == ["strategy=replay", "strategy=replay,strategy.mix_ratio=1.0"]


def test_a_file_that_is_no_results_file_is_named_as_such(tmp_path: Path) -> None:
    """It was read as its folder's results.json and the error named that path instead."""
    script = tmp_path / "checkers.py"
    script.write_text("print('hi')")
    write_run(tmp_path / "run", seed=0)
    for argv in ([str(script)], [str(tmp_path / "run"), str(script)]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert str(stop.value) == (
            f"trmgym report: error: {script}: a file that is neither results.json nor "
            "fewshot.json; give a run directory, one of those files, or a folder of runs"
        )


def test_a_sweep_job_that_failed_when_it_started_is_named_with_its_last_log_line(
    tmp_path: Path,
) -> None:
    """A job refused when its run was built keeps only its cli.log (and lock): no checkpoint, so
    it was not "unfinished" either, and its grid point vanished from the report."""
    write_seeds(tmp_path, "naive", [0.5, 0.6])
    job = tmp_path / "replay_0"
    job.mkdir()
    (job / "cli.log").write_text("[INFO] start\ntrmgym run: job 1: strategy=replay needs ...\n\n")
    (job / ".trmgym.lock").write_text("")
    fewshot = tmp_path / "fewshot_0"  # a few-shot run has a cli.log too: not a failed job
    fewshot.mkdir()
    (fewshot / "cli.log").write_text("few-shot transfer: ...\n")
    (fewshot / "fewshot.json").write_text('{"methods": {}, "complete": true}')
    report = sweep_report([tmp_path], reps=REPS)
    assert report["unfinished"] == [] and report["diverged"] == []
    assert report["failed"] == [
        {"path": str(job), "message": "trmgym run: job 1: strategy=replay needs ..."}
    ]
    assert (
        f"failed {job}: no results.json and no checkpoint; its cli.log ends: trmgym run: job 1"
        in sweep_markdown(report)
    )
