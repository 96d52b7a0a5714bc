"""TensorBoard output of a run: its configuration (Text tab), its hparams row (HPARAMS tab), and
what a resumed run leaves there — read back as TensorBoard reads it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tensorboard.backend.event_processing import (
    data_provider,
    plugin_event_accumulator,
    plugin_event_multiplexer,
)
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.util import tensor_util
from werkzeug import test as werkzeug_test
from werkzeug import wrappers

from tests.tiny_run import AGENT, SETTINGS, TASKS
from trmgym.experiment import ContinualRun
from trmgym.logging import RunLogger, hparams_of

STRATEGY = {"name": "replay", "memory_size": 32, "mix_ratio": 0.5}
#: a difficulty probe, so results.json has one (the last task's other puzzle)
PROBED = dataclasses.replace(SETTINGS, difficulty_probe=[{"task_id": 0}])


def make_run(run_dir: Path) -> ContinualRun:
    return ContinualRun(
        TASKS, AGENT, STRATEGY, PROBED, run_dir, seed=3, device="cpu", console=False
    )


def events(run_dir: Path) -> plugin_event_accumulator.EventAccumulator:
    """Every event under ``run_dir/tb`` (no sampling), as TensorBoard's Python loader reads it."""
    accumulator = plugin_event_accumulator.EventAccumulator(
        str(run_dir / "tb"), size_guidance={plugin_event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return accumulator


def config_texts(run_dir: Path) -> list[tuple[int, str]]:
    return [
        (e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode())
        for e in events(run_dir).Tensors("config/text_summary")
    ]


def hparams_tab(logdir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The HPARAMS tab's experiment and session groups, from the HParams plugin's HTTP routes
    over ``logdir`` (what the dashboard asks for)."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    context = base_plugin.TBContext(
        logdir=str(logdir),
        multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)),
    )
    apps = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route: str, body: dict[str, Any]) -> dict[str, Any]:
        client = werkzeug_test.Client(apps[route], wrappers.Response)
        response = client.post(route, data=json.dumps(body))
        assert response.status_code == 200, response.get_data(as_text=True)
        return json.loads(response.get_data(as_text=True))

    statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    groups = post(
        "/session_groups", {"startIndex": 0, "sliceSize": 100, "allowedStatuses": statuses}
    )
    return post("/experiment", {}), groups.get("sessionGroups", [])


def metric_values(group: dict[str, Any]) -> dict[str, float]:
    return {m["name"]["tag"]: m["value"] for m in group["metricValues"]}


def scalar_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = events(run_dir)
    return {
        tag: [
            (e.step, tensor_util.make_ndarray(e.tensor_proto).item())
            for e in accumulator.Tensors(tag)
        ]
        for tag in accumulator.PluginTagToContent("scalars")
    }


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ContinualRun, dict]:
    """An uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("whole")
    run = make_run(run_dir)
    return run_dir, run, run.run()


def test_the_configuration_is_written_once_as_yaml(whole) -> None:
    run_dir, run, _ = whole
    ((step, text),) = config_texts(run_dir)
    assert step == 0 and text.startswith("```yaml\n") and text.endswith("```")
    assert yaml.safe_load(text.removeprefix("```yaml\n").removesuffix("```")) == run.run_config()
    assert "memory_size: 32" in text and "batch_size: 8" in text


def test_the_hparams_tab_shows_the_settings_and_final_metrics(whole) -> None:
    run_dir, _, results = whole
    experiment, groups = hparams_tab(run_dir)
    (group,) = groups  # one row: this run, named after its event folder
    assert group["name"] == "tb"
    hparams = group["hparams"]
    expected = {
        "experiment": "run",
        "seed": 3,
        "sequence": "recolour, recolour-b",
        "tasks": 2,
        "strategy": "replay",
        "strategy.memory_size": 32,
        "strategy.mix_ratio": 0.5,
        "run.train_steps": 6,
        "run.batch_size": 8,
        "run.max_reasoning_steps": 3,
        "run.task_labels": True,
        "agent.size": "tiny",
        "agent.halting": "dqn",
        "agent.lr": 1e-3,
        "agent.compile": False,  # a bool stays a bool (torch's add_hparams makes it 0.0)
        "agent.dqn.buffer_size": 512,
        "agent.model.hidden_size": 32,  # the network built
    }
    assert {key: hparams.get(key) for key in expected} == expected
    assert not [key for key in hparams if "threads" in key or key.startswith("run.difficulty")]
    types = {info["name"]: info["type"] for info in experiment["hparamInfos"]}
    assert types["agent.compile"] == "DATA_TYPE_BOOL" and types["strategy"] == "DATA_TYPE_STRING"
    assert types["seed"] == "DATA_TYPE_FLOAT64"
    # the final metrics, from this run's own scalars cl/<metric>
    shown = metric_values(group)
    for name, value in results["metrics"].items():
        if value is None:
            assert f"cl/{name}" not in shown  # undefined: no value, never 0
        else:
            assert shown[f"cl/{name}"] == pytest.approx(value)
    assert {"cl/avg_accuracy", "cl/bwt"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert results["difficulty_probe"][0]["most_reasoning_steps"] <= 3  # the renamed key


def test_a_killed_and_resumed_run_shows_what_an_uninterrupted_one_shows(
    whole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed before its first checkpoint, then killed after a chunk's training (its scalars
    logged, its checkpoint not written), then finished, then started again once done: one
    configuration text, one hparams row, and every scalar as in the uninterrupted run."""
    whole_dir, _, whole_results = whole
    run_dir = tmp_path / "split"
    original = ContinualRun._train_chunk

    def interrupt_after_chunks(chunks: int) -> None:
        calls = {"n": 0}

        def train_then_die(self: ContinualRun, *args: Any) -> Any:
            shown = original(self, *args)
            calls["n"] += 1
            if calls["n"] == chunks:
                monkeypatch.setattr(ContinualRun, "_train_chunk", original)
                raise KeyboardInterrupt
            return shown  # what the chunk's progress line shows

        monkeypatch.setattr(ContinualRun, "_train_chunk", train_then_die)

    interrupt_after_chunks(1)  # before any checkpoint
    with pytest.raises(KeyboardInterrupt):
        make_run(run_dir).run()
    interrupt_after_chunks(3)  # task 1's first chunk trained and logged, not saved
    with pytest.raises(KeyboardInterrupt):
        make_run(run_dir).run()
    results = make_run(run_dir).run()
    again = make_run(run_dir).run()  # a finished run started again: results only
    assert results["metrics"] == whole_results["metrics"] == again["metrics"]
    # the finished run started again trained nothing: no start recorded, no events file written
    assert [s["task"] for s in again["starts"]] == [0, 1]
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 3

    assert [step for step, _ in config_texts(run_dir)] == [0]
    assert config_texts(run_dir) == config_texts(whole_dir)
    (group,) = hparams_tab(run_dir)[1]  # one row, as the uninterrupted run's
    (uninterrupted_group,) = hparams_tab(whole_dir)[1]
    assert group["hparams"] == uninterrupted_group["hparams"]
    assert metric_values(group) == metric_values(uninterrupted_group)
    split, uninterrupted = scalar_series(run_dir), scalar_series(whole_dir)
    assert split.keys() == uninterrupted.keys()
    for tag, series in uninterrupted.items():  # each point once, final metrics included
        assert split[tag] == series, tag


def test_a_sweep_folder_shows_every_strategys_keys(whole, tmp_path: Path) -> None:
    """No run's hparams hide another's: the tab gathers the keys of every run below the logdir."""
    whole_dir, _, _ = whole
    logdir = tmp_path / "sweep"
    shutil.copytree(whole_dir / "tb", logdir / "replay" / "tb")
    ewc = {"name": "ewc", "ewc_lambda": 10.0, "fisher_batches": 1, "fisher_batch_size": 8}
    ContinualRun(
        TASKS, AGENT, ewc, SETTINGS, logdir / "ewc", seed=3, device="cpu", console=False
    ).run()
    experiment, groups = hparams_tab(logdir)
    names = {info["name"] for info in experiment["hparamInfos"]}
    assert {"strategy.memory_size", "strategy.ewc_lambda"} <= names
    by_run = {group["name"]: group["hparams"] for group in groups}
    assert by_run["replay/tb"]["strategy.memory_size"] == 32
    assert by_run["ewc/tb"]["strategy.ewc_lambda"] == 10.0


def test_a_logger_that_does_not_write_writes_nothing(tmp_path: Path, whole) -> None:
    """The ranks other than 0 of a data-parallel run."""
    _, run, results = whole
    logger = RunLogger(tmp_path, 10, enabled=False, write=False)
    logger.log_start(run.run_config(), None)
    logger.log_hparams(results, 10)
    logger.close()
    assert list(tmp_path.iterdir()) == []


def test_hparams_are_flat_scalars_without_hydra_keys() -> None:
    results = {
        "experiment": "demo",
        "seed": 1,
        "sequence": ["a", "b", "c"],
        "strategy": "replay",
        "strategy_config": {
            "_target_": "trmgym.plugins.strategies.Replay",
            "_partial_": True,
            "name": "replay",
            "memory_size": 64,
            "task_quota": None,
            "schedule": {"kind": "linear", "steps": [1, 2]},
        },
        "plugins": [
            {"name": "curiosity", "class": "x.Curiosity", "config": {"weight": 0.1}},
            {"name": "logger", "class": "x.Logger", "config": None},
        ],
        "settings": {"batch_size": 4, "canvas": None, "threads": 2, "reference": "runs/s"},
        "agent": {"size": "tiny", "model": {"h_cycles": 2}, "model_config": {"h_cycles": 2}},
        "metrics": {},
    }
    assert hparams_of(results) == {
        "experiment": "demo",
        "seed": 1,
        "sequence": "a, b, c",
        "tasks": 3,
        "strategy": "replay",
        "strategy.memory_size": 64,
        "strategy.schedule.kind": "linear",
        "plugins": "curiosity, logger",
        "plugin.curiosity.weight": 0.1,
        "run.batch_size": 4,
        "run.reference": "runs/s",
        "agent.size": "tiny",
        "agent.model.h_cycles": 2,
    }
