"""`trmgym report` over several few-shot runs: fewshot.json files pooled over seeds per
configuration, with bootstrap intervals (it used to say "no readable results.json")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trmgym.report import fewshot_sweep, fewshot_sweep_markdown, main

REPS = 200


def write_fewshot(
    folder: Path, seed: int, maml: list[float], *, steps: int = 400, complete: bool = True
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "split": "heldout_params",
        "k_shot": 3,
        "steps": [0, 5],
        "ci95": [None, None],
        "tasks": 24,
    }
    doc = {
        "methods": {
            "pretrained": [{**entry, "accuracy": [0.0, 0.1 * (seed + 1)]}],
            "maml": [{**entry, "accuracy": maml}],
        },
        "config": {"seed": seed, "meta": {"meta_steps": steps}},
        "complete": complete,
    }
    (folder / "fewshot.json").write_text(json.dumps(doc))
    return folder


def test_seeds_of_one_configuration_are_pooled_and_other_configurations_kept_apart(
    tmp_path: Path,
) -> None:
    write_fewshot(tmp_path / "s0", 0, [0.0, 0.2])
    write_fewshot(tmp_path / "s1", 1, [0.0, 0.3])
    write_fewshot(tmp_path / "s2", 2, [0.0, 0.4])
    write_fewshot(tmp_path / "z_again", 1, [0.0, 0.9])  # seed 1 twice: the first by path counts
    write_fewshot(tmp_path / "short", 0, [0.0, 0.05], steps=100)
    write_fewshot(tmp_path / "cut", 3, [0.0, 0.0], complete=False)
    report = fewshot_sweep([tmp_path], reps=REPS)
    assert report["n_found"] == 6 and report["unfinished"] == [str(tmp_path / "cut")]
    assert [s["reason"] for s in report["skipped"]] == ["seed 1 is already in its group"]
    assert sorted(report["groups"]) == ["meta.meta_steps=100", "meta.meta_steps=400"]
    group = report["groups"]["meta.meta_steps=400"]
    assert group["seeds"] == [0, 1, 2] and group["n_runs"] == 3
    (maml,) = group["methods"]["maml"]
    assert maml["accuracy"][1] == pytest.approx(np.mean([0.2, 0.3, 0.4]))
    low, high = maml["ci95"][1]
    assert 0.2 - 1e-12 <= low <= 0.3 <= high <= 0.4 + 1e-12
    assert sorted(maml["values"][1]) == [0.2, 0.3, 0.4]
    markdown = fewshot_sweep_markdown(report)
    assert "meta.meta_steps=400: 3 seed(s)" in markdown and "| maml | 0.000" in markdown


def test_trmgym_report_on_a_folder_of_few_shot_runs_writes_the_pooled_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in (0, 1):
        write_fewshot(tmp_path / f"s{seed}", seed, [0.0, 0.2 + 0.1 * seed])
    assert main([str(tmp_path), "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "heldout_params, k = 3" in out and f"report: {tmp_path / 'report_fewshot.json'}" in out
    pooled = json.loads((tmp_path / "report_fewshot.json").read_text())
    assert pooled["groups"]["fewshot"]["methods"]["maml"][0]["accuracy"][1] == pytest.approx(0.25)
    page = (tmp_path / "report_fewshot.html").read_text()
    assert "2 seed(s)" in page and "<img" in page
    # two run directories given one by one: the report goes to their parent, not into a run
    (tmp_path / "report_fewshot.json").unlink()
    assert main([str(tmp_path / "s0"), str(tmp_path / "s1"), "--reps", "50"]) == 0
    assert (tmp_path / "report_fewshot.json").is_file()
    assert not (tmp_path / "s0" / "report_fewshot.json").exists()
