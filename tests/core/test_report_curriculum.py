"""The curriculum block of a run's results.json: its plot, its report section, and sweeps of runs
that hold one."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.core.test_report import make_results, png_size, write_run
from trmgym.report import plot_curriculum, write_plots, write_report, write_sweep_report
from trmgym.results import aggregate, load_results

#: a ramp over three Sudoku levels, compared with uniform sampling (which never got there)
RAMP = {
    "name": "ramp",
    "levels": [{"blanks": 4}, {"blanks": 8}, {"blanks": 12}],
    "level_names": ["blanks=4", "blanks=8", "blanks=12"],
    "history": {
        "step": [50, 100, 150, 200],
        "env_steps": [3200, 6400, 9600, 12800],
        "level": [0, 1, 1, 2],
        "probabilities": [[1.0, 0.0, 0.0], [0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.05, 0.15, 0.8]],
    },
    "steps_to_threshold": {"ramp": 12800, "uniform": None},
    "threshold": 0.8,
    "level": {"blanks": 12},
    "curves": {
        "ramp": {"env_steps": [3200, 6400, 9600, 12800], "accuracy": [0.1, 0.3, 0.6, 0.85]},
        "uniform": {"env_steps": [3200, 6400, 9600, 12800], "accuracy": [0.05, 0.2, None, 0.5]},
    },
}
#: a rehearsal sampler over the tasks: no current level, no comparison, no level_names
REHEARSAL = {
    "name": "rehearsal",
    "levels": [{"task": 0}, {"task": 1}],
    "history": {
        "step": [50, 100],
        "env_steps": [3200, 6400],
        "level": [None, None],
        "probabilities": [[0.5, 0.5], [0.25, 0.75]],
    },
}


def rows(html: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", html)


def section(html: str) -> str:
    """The curriculum section of a report.html (it ends where the Agent section starts)."""
    return html[html.index("<h2>Curriculum") : html.index("<h2>Agent</h2>")]


def test_write_plots_adds_the_curriculum_png_only_with_the_block(tmp_path: Path) -> None:
    run = write_run(tmp_path / "ramp", curriculum=RAMP)
    paths = write_plots(run)
    assert set(paths) == {"accuracy_matrix", "curves", "curriculum"}
    assert paths["curriculum"] == run / "plots" / "curriculum.png"
    assert paths["curriculum"].stat().st_size > 10_000
    pixels = plot_curriculum(make_results(curriculum=RAMP))
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3 and pixels.std() > 10
    assert pixels.shape[:2] == png_size(paths["curriculum"]) == (480, 1400)  # two panels
    # without a comparison only the left panel, the width of the other single-panel plots
    assert plot_curriculum(make_results(curriculum=REHEARSAL)).shape[:2] == (480, 750)
    plain = write_run(tmp_path / "plain")
    assert set(write_plots(plain)) == {"accuracy_matrix", "curves"}
    assert not (plain / "plots" / "curriculum.png").exists()
    with pytest.raises(ValueError, match="'curriculum' must be an object"):
        plot_curriculum(make_results())


def test_report_section_lists_steps_to_threshold_and_final_probabilities(tmp_path: Path) -> None:
    text = write_report(write_run(tmp_path / "run", curriculum=RAMP)).read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 3
    plots = text[text.index("<h2>Plots</h2>") : text.index("<h2>Curriculum")]
    assert plots.count("<img") == 2  # the curriculum plot is shown once, in its own section
    curriculum = section(text)
    assert curriculum.startswith("<h2>Curriculum: ramp</h2>")
    assert '<img src="data:image/png;base64,' in curriculum and 'alt="curriculum"' in curriculum
    assert "<th>env steps to threshold</th>" in curriculum
    assert "<td>ramp</td><td>blanks=12</td><td>0.8</td><td>12800</td><td>1 (reference)</td>" in (
        rows(curriculum)
    )
    # a results.json written before the speedup was recorded: no ratio is made up
    assert "<td>uniform</td><td>blanks=12</td><td>0.8</td><td>never</td><td>n/a</td>" in (
        rows(curriculum)
    )
    assert "after 12,800 env steps; current level blanks=12" in curriculum
    final = [
        "<td>0</td><td>blanks=4</td><td>0.0500</td>",
        "<td>2</td><td>blanks=12</td><td>0.8000</td>",
    ]
    assert all(row in rows(curriculum) for row in final)


def test_report_section_gives_each_curriculums_speedup_and_marks_lower_bounds(
    tmp_path: Path,
) -> None:
    block = copy.deepcopy(RAMP)
    block["steps_to_threshold"] = {"ramp": 6400, "uniform": None, "plr": 9600}
    block["budget_env_steps"] = 12800
    block["speedup"] = {
        "uniform": {"ratio": 2.0, "lower_bound": True},
        "plr": {"ratio": 1.5, "lower_bound": False},
    }
    curriculum = section(write_report(write_run(tmp_path / "run", curriculum=block)).read_text())
    table = rows(curriculum)
    assert "<td>ramp</td><td>blanks=12</td><td>0.8</td><td>6400</td><td>1 (reference)</td>" in table
    assert "<td>uniform</td><td>blanks=12</td><td>0.8</td><td>never</td><td>≥ 2.00×</td>" in table
    assert "<td>plr</td><td>blanks=12</td><td>0.8</td><td>9600</td><td>1.50×</td>" in table
    assert "within the budget of 12,800 env steps; ≥: that curriculum never" in curriculum
    # the main curriculum never reached the threshold: no ratio anywhere, no "≥" footnote
    block["steps_to_threshold"] = {"ramp": None, "uniform": None, "plr": 9600}
    block["speedup"] = {"uniform": None, "plr": None}
    curriculum = section(write_report(write_run(tmp_path / "never", curriculum=block)).read_text())
    table = rows(curriculum)
    assert (
        "<td>ramp</td><td>blanks=12</td><td>0.8</td><td>never</td><td>n/a (never reached)</td>"
        in (table)
    )
    assert (
        "<td>plr</td><td>blanks=12</td><td>0.8</td><td>9600</td><td>n/a (ramp never reached it)</td>"
        in (table)
    )
    assert "≥" not in curriculum
    # as written now: the main never reached it, plr did: an upper bound (plr / ramp's budget)
    block["speedup"] = {
        "uniform": None,
        "plr": {"ratio": 0.75, "lower_bound": False, "upper_bound": True},
    }
    curriculum = section(write_report(write_run(tmp_path / "upper", curriculum=block)).read_text())
    table = rows(curriculum)
    assert "<td>plr</td><td>blanks=12</td><td>0.8</td><td>9600</td><td>≤ 0.75×</td>" in table
    neither = "<td>uniform</td><td>blanks=12</td><td>0.8</td><td>never</td><td>n/a (neither"
    assert f"{neither} reached it)</td>" in table
    assert "≤: ramp never reached it" in curriculum


def test_a_sampler_without_levels_or_comparison_gets_a_shorter_section(tmp_path: Path) -> None:
    text = write_report(write_run(tmp_path / "run", curriculum=REHEARSAL)).read_text()
    curriculum = section(text)
    assert "<p>2 levels: task=0 · task=1.</p>" in curriculum  # names made from the option dicts
    assert "Compared curricula" not in curriculum and "never" not in curriculum
    assert "(after 6,400 env steps)</h3>" in curriculum  # no current level to name
    assert "<td>1</td><td>task=1</td><td>0.7500</td>" in rows(curriculum)


def test_a_run_without_the_block_has_no_curriculum_section(tmp_path: Path) -> None:
    text = write_report(write_run(tmp_path / "run")).read_text(encoding="utf-8")
    assert "Curriculum" not in text and "curriculum" not in text
    assert text.count("data:image/png;base64,") == 2


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("history", "probabilities"), [[1.0, 0.0, 0.0]], "one list per record (4)"),
        (("history", "level"), [0, 1, 1, 3], "level indices 0..2 or null"),
        (("level_names",), ["a", "b"], "3 strings, one per level"),
        (("curves", "uniform", "accuracy"), [0.1], "curriculum.curves.uniform.accuracy"),
        (("steps_to_threshold", "ramp"), "soon", "steps_to_threshold must hold numbers"),
        (("speedup",), [1.5], "curriculum.speedup must map curricula to ratios"),
        (("speedup",), {"uniform": 1.5}, "curriculum.speedup.uniform must be null or"),
        (("speedup",), {"uniform": {"ratio": "2", "lower_bound": True}}, "speedup.uniform"),
        (
            ("speedup",),
            {"uniform": {"ratio": 2.0}},
            "{ratio: number > 0, lower_bound: bool, upper_bound: bool}",
        ),
        (("speedup",), {"uniform": {"ratio": float("nan"), "lower_bound": False}}, "number > 0"),
        (("speedup",), {"uniform": {"ratio": 0.0, "lower_bound": False}}, "number > 0"),
        (("budget_env_steps",), 12800.0, "budget_env_steps must be a positive int or null"),
    ],
)
def test_a_malformed_block_is_refused_naming_the_file_and_key(
    tmp_path: Path, path: tuple[str, ...], value: object, message: str
) -> None:
    block = copy.deepcopy(RAMP)
    parent = block
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    run = write_run(tmp_path / "run", curriculum=block)
    with pytest.raises(ValueError, match=re.escape(str(run / "results.json"))) as error:
        write_report(run)
    assert message in str(error.value)


def test_sweeps_and_aggregates_read_runs_with_the_block(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / "sweep" / f"ramp_{s}", seed=s, curriculum=RAMP) for s in (0, 1)]
    runs.append(write_run(tmp_path / "sweep" / "ewc_0", seed=0, strategy="ewc"))
    assert load_results(runs[0])["curriculum"] == RAMP  # read back untouched
    report, path = write_sweep_report([tmp_path / "sweep"], reps=20)
    assert report["n_read"] == 3 and report["skipped"] == []
    assert sorted(g["n_runs"] for g in report["groups"].values()) == [1, 2]
    assert json.loads(path.read_text())["n_read"] == 3
    assert (tmp_path / "sweep" / "report.html").is_file()
    assert aggregate(runs[:2])["n"] == 2
