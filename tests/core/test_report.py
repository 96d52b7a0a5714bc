"""Run reports: plots, the self-contained HTML report, metric cross-checks, seed aggregates, CLI."""

from __future__ import annotations

import io
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from trmgym.report import (
    aggregate_table,
    check_metrics,
    main,
    plot_accuracy_matrix,
    plot_curves,
    write_plots,
    write_report,
)
from trmgym.results import (
    aggregate,
    aggregate_groups,
    find_runs,
    forward_transfer,
    load_results,
    summary_stats,
    t_critical,
)

NAMES = ["sudoku-easy", "maze", "<script>alert(1)</script>"]
R3 = [[0.9, 0.1, 0.2], [0.6, 0.8, 0.3], [0.5, 0.7, 0.95]]
B3 = [0.1, 0.05, 0.1]
# By hand: avg_accuracy (0.5+0.7+0.95)/3; forgetting [0.9-0.5, 0.8-0.7]; bwt mean(-0.4, -0.1);
# fwt mean(0.1-0.05, 0.3-0.1); reasoning steps mean of the last row [2, 3, 4].
METRICS = {
    "avg_accuracy": 2.15 / 3,
    "avg_forgetting": 0.25,
    "bwt": -0.25,
    "fwt": 0.125,
    "avg_reasoning_steps": 3.0,
}


def make_results(**changes: object) -> dict:
    results = {
        "experiment": "demo",
        "sequence": NAMES,
        "tasks": [
            {
                "name": NAMES[0],
                "env_id": "trmgym/Sudoku-v0",
                "kwargs": {"blanks": 4},
                "train_kwargs": {},
                "eval_kwargs": {},
            },
            {
                "name": NAMES[1],
                "env_id": "trmgym/Maze-v0",
                "kwargs": {"size": 7},
                "train_kwargs": {},
                "eval_kwargs": {},
            },
            {
                "name": NAMES[2],
                "env_id": "trmgym/ARCGen-v0",
                "kwargs": {"family": "flip"},
                "train_kwargs": {"augment": True},
                "eval_kwargs": {},
            },
        ],  # fmt: skip
        "strategy": "naive",
        "seed": 7,
        "accuracy_matrix": R3,
        "cell_accuracy_matrix": [[0.95, 0.5, 0.6], [0.8, 0.9, 0.62], [0.75, 0.85, 0.99]],
        "reasoning_steps_matrix": [[2.0, 5.0, 5.0], [3.0, 2.5, 4.0], [2.0, 3.0, 4.0]],
        "random_init_accuracy": B3,
        "curves": [[0.3, 0.7, 0.9], [0.2, 0.5, 0.8], [0.4, 0.9, 0.95]],
        "metrics": dict(METRICS),
        "forgetting": [0.4, 0.1],
        "max_reasoning_steps": 8,
        "difficulty_probe": [
            {
                "options": {"blanks": 12},
                "accuracy": 0.125,
                "cell_accuracy": 0.5,
                "reasoning_steps": 6.5,
                "most_reasoning_steps": 7,
            },
        ],  # fmt: skip
        "settings": {"train_steps": 30, "eval_every": 10, "batch_size": 4},
        "agent": {"hidden_size": 32, "halting": "dqn"},
        "env_steps": 360,
        "wall_time_s": 12.5,
        "device": "cpu",
        "versions": {"trmgym": "0.1.0", "numpy": np.__version__},
    }
    results.update(changes)
    return results


def write_run(folder: Path, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(make_results(**changes)))
    return folder


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return height, width


# ------------------------------------------------------------------------------------- plots
def test_write_plots_makes_pngs_matching_the_returned_pixels(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    paths = write_plots(run)
    assert set(paths) == {"accuracy_matrix", "curves"}
    assert paths["accuracy_matrix"] == run / "plots" / "accuracy_matrix.png"
    for path in paths.values():
        assert path.stat().st_size > 1000
        png_size(path)  # checks the PNG signature
    pixels = plot_accuracy_matrix(make_results(), tmp_path / "again.png")
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.shape[:2] == png_size(tmp_path / "again.png")
    assert pixels.std() > 10  # a heatmap, not a blank canvas
    curves = plot_curves(run)  # from a run directory, nothing written
    assert curves.dtype == np.uint8 and curves.shape[2] == 3
    assert not (run / "plots" / "None").exists()


def test_the_pngs_hold_exactly_the_pixels_given_to_tensorboard(tmp_path: Path) -> None:
    """write_plots(images=...) hands back what it drew, so a run's end draws each figure once:
    the PNG on disk and TensorBoard's image are the same pixels; write_report embeds the plots
    it is given instead of drawing them again."""
    from matplotlib.image import imread

    run = write_run(tmp_path / "run")
    images: dict = {}
    paths = write_plots(run, images=images)
    assert set(images) == set(paths) == {"accuracy_matrix", "curves"}
    for name, path in paths.items():
        on_disk = (imread(path)[..., :3] * 255).round().astype(np.uint8)
        assert np.array_equal(on_disk, images[name]), name
    stamps = {name: path.stat().st_mtime_ns for name, path in paths.items()}
    html = write_report(run, paths).read_text()
    assert {name: path.stat().st_mtime_ns for name, path in paths.items()} == stamps
    assert html.count("data:image/png;base64,") == 2


def test_plots_accept_missing_cells_and_mathtext_like_names(tmp_path: Path) -> None:
    upper_missing = [[0.9, None, None], [0.6, 0.8, None], [0.5, 0.7, 0.95]]
    results = make_results(
        sequence=["a$b", "c$d", "e"], accuracy_matrix=upper_missing, curves=[[0.5], [], [0.1, 0.2]]
    )
    assert plot_accuracy_matrix(results, tmp_path / "m.png").shape[2] == 3
    assert plot_curves(results, tmp_path / "c.png").shape[2] == 3
    assert (tmp_path / "m.png").stat().st_size > 0 and (tmp_path / "c.png").stat().st_size > 0


# ------------------------------------------------------------------------------------ report
def test_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text(encoding="utf-8")
    assert "demo · naive · seed 7" in text
    for name in ("sudoku-easy", "maze", "trmgym/Sudoku-v0", "trmgym/ARCGen-v0"):
        assert name in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()
    for value in ("0.7167", "0.2500", "-0.2500", "0.1250", "3.0000"):
        assert value in text
    assert "0.950" in text and "0.990" in text  # accuracy and cell-accuracy matrices
    assert "<td>0.1250</td><td>0.5000</td><td>6.5000</td><td>7</td>" in text  # difficulty probe
    assert "<th>most_reasoning_steps</th>" in text
    assert text.count("data:image/png;base64,") == 2
    # Strip the base64 payloads, whose alphabet could spell "http" by chance.
    markup = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", text)
    assert "http" not in markup
    assert re.findall(r'src="([^"]*)"', markup) == ["data:image/png;base64,"] * 2
    assert not re.search(r"<(link|script|iframe)\b", text)
    assert "&quot;hidden_size&quot;: 32" in text  # config as escaped JSON
    assert "MISMATCH" not in text
    assert (run / "plots" / "curves.png").is_file()


def test_report_shows_the_strategy_plugins_and_run_settings(tmp_path: Path) -> None:
    strategy = {
        "_target_": "trmgym.plugins.strategies.Replay",
        "_partial_": True,
        "name": "replay",
        "memory_size": 512,
        "mix_ratio": 0.25,
        "task_quota": None,
    }
    plugins = [
        {"name": "curiosity", "class": "x.Curiosity", "config": {"weight": 1e-5, "rnd": {"k": 3}}},
        {"name": "<b>plugin</b>", "class": "x.Other", "config": None},
    ]
    settings = {"train_steps": 30, "batch_size": 4, "difficulty_probe": [{"blanks": 12}]}
    run = write_run(
        tmp_path / "run",
        strategy="replay",
        strategy_config=strategy,
        plugins=plugins,
        settings=settings,
    )
    text = write_report(run).read_text(encoding="utf-8")
    section = text[text.index("<h2>Strategy and settings</h2>") : text.index("<h2>Metrics</h2>")]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    assert "<h3>Strategy: replay</h3>" in section
    assert "<td>class</td><td>trmgym.plugins.strategies.Replay</td>" in rows
    assert "<td>memory_size</td><td>512</td>" in rows
    assert "<td>mix_ratio</td><td>0.25</td>" in rows  # as results.json holds it, not rounded
    assert "<td>task_quota</td><td>null</td>" in rows
    assert "_partial_" not in section and "<td>name</td>" not in section
    assert "<td>curiosity</td><td>x.Curiosity</td><td>weight: 1e-05<br>rnd.k: 3</td>" in rows
    assert "<td>&lt;b&gt;plugin&lt;/b&gt;</td><td>x.Other</td><td>n/a</td>" in rows
    assert "n/a: not recorded" in section
    assert "<td>train_steps</td><td>30</td>" in rows and "<td>batch_size</td><td>4</td>" in rows
    assert "<td>difficulty_probe</td><td>[{&quot;blanks&quot;: 12}]</td>" in rows
    # a run without plugins or recorded strategy settings says so
    text = write_report(write_run(tmp_path / "old")).read_text(encoding="utf-8")
    assert "<h3>Strategy: naive</h3>" in text and "does not record the strategy" in text
    assert "<h3>Plugins" not in text


def test_tampered_metric_is_flagged(tmp_path: Path) -> None:
    metrics = {**METRICS, "bwt": -0.25 + 1e-6}
    run = write_run(tmp_path / "run", metrics=metrics)
    text = write_report(run).read_text(encoding="utf-8")
    flagged = [row for row in re.findall(r"<tr>(.*?)</tr>", text) if "MISMATCH" in row]
    assert len(flagged) == 1
    assert "<td>bwt</td>" in flagged[0] and "1.00e-06" in flagged[0]
    assert '<span class="bad">-0.2500</span>' in flagged[0] and ".bad{color:#c00" in text
    assert "differ from those recomputed" in text


def test_check_metrics_tolerance_forgetting_and_unrecomputable(tmp_path: Path) -> None:
    rows, reason = check_metrics(make_results(metrics={**METRICS, "bwt": -0.25 + 1e-12}))
    assert reason is None and not any(r["mismatch"] for r in rows)
    assert [r["metric"] for r in rows][-2:] == ["forgetting[sudoku-easy]", "forgetting[maze]"]
    rows, _ = check_metrics(make_results(forgetting=[0.4, 0.2], metrics={**METRICS, "fwt": None}))
    assert {r["metric"] for r in rows if r["mismatch"]} == {"fwt", "forgetting[maze]"}
    steps = [[2.0, 5.0, 5.0], [3.0, 2.5, 4.0], [2.0, None, 4.0]]
    rows, reason = check_metrics(make_results(reasoning_steps_matrix=steps))
    assert "reasoning_steps" in reason and not any(r["mismatch"] for r in rows)
    text = write_report(write_run(tmp_path / "r", reasoning_steps_matrix=steps)).read_text()
    assert "Could not recompute" in text


def test_older_results_name_the_most_steps_of_a_probe_max_reasoning_steps(tmp_path: Path) -> None:
    """A difficulty_probe entry once called the most steps taken "max_reasoning_steps", the top
    level's name for the step limit; such files are read with the current name."""
    old_probe = {**make_results()["difficulty_probe"][0]}
    old_probe["max_reasoning_steps"] = old_probe.pop("most_reasoning_steps")
    run = write_run(tmp_path / "old", difficulty_probe=[old_probe])
    results = load_results(run)
    assert results["difficulty_probe"] == make_results()["difficulty_probe"]
    assert list(results["difficulty_probe"][0])[-1] == "most_reasoning_steps"  # same column
    assert results["max_reasoning_steps"] == 8  # the step limit keeps its name
    assert json.loads((run / "results.json").read_text())["difficulty_probe"] == [old_probe]
    assert main([str(run)]) == 0  # trmgym report
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "<th>most_reasoning_steps</th>" in text and "<th>max_reasoning_steps</th>" not in text
    assert "<td>0.1250</td><td>0.5000</td><td>6.5000</td><td>7</td>" in text


# ------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({k: v for k, v in make_results().items() if k != "metrics"}), "metrics"),
        (json.dumps(make_results(accuracy_matrix=[[0.1, 0.2], [0.3, 0.4]])), "square"),
        (json.dumps(make_results(accuracy_matrix=[[0.1, 0.2, 0.3]] * 2 + [[0.1]])), "square"),
        (json.dumps(make_results(cell_accuracy_matrix=[[0.1] * 3] * 2)), "cell_accuracy_matrix"),
        (json.dumps(make_results(accuracy_matrix=[["a", 0.2, 0.3]] * 3)), "numbers or null"),
        (json.dumps(make_results(curves=[[0.1]])), "curves"),
    ],
)
def test_malformed_results_raise_naming_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad" / "results.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))) as error:
        load_results(path.parent)
    assert message in str(error.value)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        write_report(path.parent)


def test_missing_results_raise_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "results.json"))):
        load_results(tmp_path)
    with pytest.raises(ValueError, match="at least one run"):
        aggregate([])


# -------------------------------------------------------------------------------- aggregate
def test_t_critical_table() -> None:
    assert t_critical(1) == 12.706 and t_critical(2) == 4.303 and t_critical(30) == 2.042
    assert t_critical(31) == 1.96 and t_critical(1000) == 1.96
    with pytest.raises(ValueError, match="df must be an int >= 1"):
        t_critical(0)


def test_summary_stats_small_samples() -> None:
    assert summary_stats([]) == {"n": 0, "mean": None, "std": None, "ci95": None,
                                 "ci95_low": None, "ci95_high": None}  # fmt: skip
    one = summary_stats([0.4])
    assert one["n"] == 1 and one["mean"] == 0.4 and one["std"] is None and one["ci95"] is None


def test_aggregate_mean_std_ci_by_hand(tmp_path: Path) -> None:
    runs = [
        write_run(tmp_path / str(k), seed=k, metrics={**METRICS, "avg_accuracy": acc, "fwt": None})
        for k, acc in enumerate([0.1, 0.2, 0.3])
    ]
    result = aggregate(runs)
    assert result["n"] == 3 and result["seeds"] == [0, 1, 2] and result["strategy"] == "naive"
    stats = result["metrics"]["avg_accuracy"]
    half = 4.303 * 0.1 / math.sqrt(3)
    assert stats["n"] == 3 and stats["values"] == [0.1, 0.2, 0.3]
    assert stats["mean"] == pytest.approx(0.2, abs=1e-12)
    assert stats["std"] == pytest.approx(0.1, abs=1e-12)
    assert stats["ci95"] == pytest.approx(half, abs=1e-12)
    assert stats["ci95_low"] == pytest.approx(0.2 - half) and stats["ci95_high"] == pytest.approx(
        0.2 + half
    )
    assert result["metrics"]["bwt"]["std"] == pytest.approx(0.0)
    assert result["metrics"]["fwt"] == {"n": 0, "mean": None, "std": None, "ci95": None,
                                        "ci95_low": None, "ci95_high": None,
                                        "values": [None, None, None]}  # fmt: skip
    json.dumps(result)  # JSON-ready
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(aggregate_table(result))
    table = buffer.getvalue()
    assert "avg_accuracy" in table and "0.2000" in table and f"±{half:.4f}" in table
    assert "n/a" in table  # fwt has no values


def test_aggregate_rejects_non_numeric_metric(tmp_path: Path) -> None:
    run = write_run(tmp_path / "0", metrics={**METRICS, "bwt": "high"})
    with pytest.raises(ValueError, match=re.escape(str(run / "results.json")) + ".*metrics.bwt"):
        aggregate([run])


def test_groups_split_by_hydra_overrides_and_runs_sort_numerically(tmp_path: Path) -> None:
    for k in range(12):
        strategy = "naive" if k % 2 else "ewc"
        run = write_run(tmp_path / "multi" / str(k), seed=k, strategy=strategy)
        (run / ".hydra").mkdir()
        # `console` only changes what is printed: it does not split a group
        console = "- console=false\n" if k < 4 else ""
        (run / ".hydra" / "overrides.yaml").write_text(
            f"- strategy={strategy}\n- seed={k}\n{console}"
        )
    runs = find_runs(tmp_path / "multi")
    assert [r.name for r in runs] == [str(k) for k in range(12)]
    groups = aggregate_groups(runs)
    assert [(g["label"], g["n"]) for g in groups] == [("strategy=ewc", 6), ("strategy=naive", 6)]
    assert groups[0]["seeds"] == [0, 2, 4, 6, 8, 10]


def test_the_forward_transfer_reference_does_not_split_a_group(tmp_path: Path) -> None:
    runs = []
    for k in range(2):
        settings = {"train_steps": 30, "eval_every": 10, "batch_size": 4, "reference": f"s{k}"}
        run = write_run(tmp_path / str(k), seed=k, settings=settings)
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={k}\n- run.reference=s{k}\n")
        runs.append(run)
    [group] = aggregate_groups(runs)
    assert group["n"] == 2 and group["seeds"] == [0, 1]


# ------------------------------------------------------------------------------------- CLI
def test_main_on_a_run_dir_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write_run(tmp_path / "run", metrics={**METRICS, "avg_accuracy": 0.5})
    assert main([str(run)]) == 0
    assert (run / "report.html").is_file() and (run / "plots" / "accuracy_matrix.png").is_file()
    out = capsys.readouterr().out
    assert "avg_accuracy" in out and "0.7167" not in out.split("mismatch")[0].split("metrics")[0]
    assert "mismatch: avg_accuracy" in out and "report.html" in out


def test_main_with_a_scratch_reference_prints_forward_transfer(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = write_run(tmp_path / "run")
    scratch = write_run(tmp_path / "scratch", strategy="scratch")
    assert main([str(run), "--reference", str(scratch)]) == 0
    expected = forward_transfer(make_results(), make_results(strategy="scratch"))
    out = capsys.readouterr().out
    per_task = ", ".join(f"{v:.3f}" for v in expected["ft_per_task"])
    assert "forward transfer (vs" in out and f"): {expected['ft']:.4f}" in out
    assert f"per task: {per_task}" in out
    with pytest.raises(SystemExit, match="must be a run with strategy=scratch"):
        main([str(run), "--reference", str(run)])
    with pytest.raises(SystemExit, match="--reference needs exactly one run"):
        main([str(run), str(scratch), "--reference", str(scratch)])


def test_main_on_a_multirun_dir_writes_report_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # configs/config.yaml's sweep layout: runs/<experiment>/multirun/<timestamp>/<job number>
    multirun = tmp_path / "multirun" / "2024-01-01_12-00-00"
    for k, acc in enumerate([0.1, 0.2, 0.3]):
        write_run(multirun / str(k), seed=k, metrics={**METRICS, "avg_accuracy": acc})
    assert main([str(tmp_path / "multirun"), "--reps", "50"]) == 0  # runs two levels below
    saved = json.loads((tmp_path / "multirun" / "report.json").read_text())
    [group] = saved["groups"].values()
    assert group["n_runs"] == 3 and group["metrics"]["avg_accuracy"]["mean"] == pytest.approx(0.2)
    assert saved["n_found"] == 3 and saved["skipped"] == []
    assert "0.200 [" in capsys.readouterr().out
    assert not (multirun / "0" / "report.html").exists()
    assert (tmp_path / "multirun" / "report.html").is_file()


def test_main_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=re.escape(str(tmp_path / "nowhere"))):
        main([str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no readable results.json at any depth"):
        main([str(tmp_path / "empty")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{")
    with pytest.raises(SystemExit, match=re.escape(str(bad / "results.json")) + ".*not valid JSON"):
        main([str(bad)])


def test_the_sequence_table_shows_each_tasks_options_and_trained_steps(tmp_path: Path) -> None:
    """Tasks told apart by reset options only (the quickstart's task_id) must not look alike, and
    the steps shown are the ones trained: own or the run's, times run.budget_scale."""
    tasks = make_results()["tasks"]
    tasks[1] = {**tasks[1], "options": {"task_id": 1}, "train_steps": 135}
    settings = {"train_steps": 150, "eval_every": 25, "batch_size": 4, "budget_scale": 0.3}
    run = write_run(tmp_path / "run", tasks=tasks, settings=settings)
    text = write_report(run).read_text()
    table = text[text.index("<h2>Sequence</h2>") : text.index("<h2>Strategy")]
    assert "<th>reset options</th>" in table and "<th>train steps</th>" in table
    assert "<td>{&quot;task_id&quot;: 1}</td>" in table
    assert "<td>45 (150 × 0.3)</td>" in table  # the run's budget, scaled
    assert "<td>40 (135 × 0.3)</td>" in table  # its own, scaled (round(40.5) = 40)
