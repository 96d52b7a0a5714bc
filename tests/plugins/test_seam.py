"""The training-loop seam: a run's plugins are called in order, combined, checkpointed by name
and resumed exactly (see ``trmgym.plugins.base``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.plugins.recording import RecordingPlugin
from tests.tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves
from trmgym.experiment import ContinualRun
from trmgym.plugins import Plugin, Plugins, PuzzleMemory, TaskDirective
from trmgym.runner import TaskSpec


def make_run(run_dir: Path, *plugins: Plugin, strategy: str = "replay", **changes) -> ContinualRun:
    settings = dataclasses.replace(SETTINGS, **changes)
    return ContinualRun(
        TASKS,
        AGENT,
        {"name": strategy},
        settings,
        run_dir,
        seed=3,
        device="cpu",
        console=False,
        plugins=plugins,
    )


# ------------------------------------------------------------------------- Plugins list
class Fixed(Plugin):
    def __init__(self, name, options=None, replay=None, penalty=None, fresh=False):
        self.name, self._options, self._replay, self._penalty = name, options, replay, penalty
        self.fresh = fresh

    def before_task(self, task_index):
        return TaskDirective(fresh_agent=self.fresh)

    def reset_options(self, rows):
        return None if self._options is None else [self._options(r) for r in rows]

    def replay_batch(self):
        return self._replay

    def penalty(self, model):
        return self._penalty


def memory(value: int, n: int) -> PuzzleMemory:
    return PuzzleMemory(np.full((n, 2, 2), value), np.full((n, 2, 2), value), np.full(n, value))


def test_plugins_combine_answers_in_order() -> None:
    first = Fixed("a", options=lambda r: {"blanks": 4, "task_id": int(r)}, replay=memory(1, 2))
    second = Fixed(
        "b",
        options=lambda r: None if r == 0 else {"blanks": 6},
        replay=memory(2, 3),
        penalty=torch.tensor(2.0),
        fresh=True,
    )
    third = Fixed("c", penalty=torch.tensor(0.5))
    plugins = Plugins([first, second, third])
    # later plugins win on a shared key, a None row keeps the earlier choice
    assert plugins.reset_options(np.array([0, 1])) == [
        {"blanks": 4, "task_id": 0},
        {"blanks": 6, "task_id": 1},
    ]
    batch = plugins.replay_batch()
    assert batch.task.tolist() == [1, 1, 2, 2, 2] and batch.grid.shape == (5, 2, 2)
    assert float(plugins.penalty(torch.nn.Linear(1, 1))) == 2.5
    assert plugins.before_task(0) == TaskDirective(fresh_agent=True)
    assert Plugins([third]).reset_options(np.array([0])) is None
    assert Plugins([third]).replay_batch() is None and Plugins([]).penalty(None) is None
    assert not Plugins([Plugin()]).chooses_options and plugins.chooses_options


def test_plugins_refuse_bad_members_and_answers() -> None:
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        Plugins([Fixed("a"), Fixed("a")])
    with pytest.raises(TypeError, match=r"plugins\[1\] must be a trmgym Plugin"):
        Plugins([Fixed("a"), object()])
    wrong = Plugins([Fixed("a", options=lambda r: {})])
    wrong._options[0].reset_options = lambda rows: [{}]  # one entry for two rows
    with pytest.raises(ValueError, match="returned 1 entries for 2 rows"):
        wrong.reset_options(np.array([0, 1]))

    class Dropper(Plugin):
        name = "dropper"

        def wrap_env(self, env, task, train):
            return None

    with pytest.raises(TypeError, match="'dropper': wrap_env must return an env"):
        Plugins([Dropper()]).wrap_env(object(), None, True)
    with pytest.raises(ValueError, match=r"missing: \['b'\], unknown: \['c'\]"):
        Plugins([Fixed("a"), Fixed("b")]).load_state_dict({"a": {}, "c": {}})


class Counting(Plugin):
    """Reports how often it was asked for metrics, and the model it was handed."""

    def __init__(self, name: str = "counting", values: object = "count") -> None:
        self.name, self.values, self.asked, self.models = name, values, 0, []

    def metrics(self, model):
        self.asked += 1
        self.models.append(model)
        return {"test/asked": float(self.asked)} if self.values == "count" else self.values


def test_plugin_metrics_are_merged_and_bad_answers_name_the_plugin() -> None:
    model = torch.nn.Linear(1, 1)
    merged = Plugins([Counting(), Plugin(), Counting("other", {"other/x": None, "other/y": 2.0})])
    assert merged.metrics(model) == {"test/asked": 1.0, "other/x": None, "other/y": 2.0}
    assert merged[0].models == [model]
    with pytest.raises(ValueError, match=r"plugin 'other': metrics \['test/asked'\] are logged"):
        Plugins([Counting(), Counting("other")]).metrics(model)
    with pytest.raises(TypeError, match="plugin 'bad': metrics must return None or a mapping"):
        Plugins([Counting("bad", [1.0])]).metrics(model)


# ------------------------------------------------------------------------ in a real run
def test_plugin_metrics_are_logged_after_each_training_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trmgym.logging import RunLogger

    logged: list[tuple[int, dict]] = []
    original = RunLogger.scalars

    def spy(self, values, step):
        logged.append((step, dict(values)))
        original(self, values, step)

    monkeypatch.setattr(RunLogger, "scalars", spy)
    counting = Counting()
    run = make_run(tmp_path, counting, strategy="naive")
    run.run()
    # 2 tasks x 2 chunks of eval_every=3 steps, logged with the chunk's rollout statistics
    chunks = [(step, v["test/asked"]) for step, v in logged if "test/asked" in v]
    assert chunks == [(3, 1.0), (6, 2.0), (9, 3.0), (12, 4.0)]
    assert all("rollout/episodes" in v for _, v in logged if "test/asked" in v)
    assert all(model is run.agent.model for model in counting.models)


def test_hook_order_in_a_run(tmp_path: Path) -> None:
    recorder = RecordingPlugin()
    results = make_run(tmp_path, recorder).run()
    events = recorder.events
    kinds = [e[0] for e in events]
    # initial evaluation of both tasks (random-init accuracy) comes first, through wrap_env
    assert events[:2] == [["wrap_env", "recolour", False, 8], ["wrap_env", "recolour-b", False, 8]]
    for task in (0, 1):
        start = events.index(["before_task", task])
        end = events.index(["after_task", task])
        inside = events[start + 1 : end]
        # training envs: one per chunk of eval_every=3 steps (2 chunks), each wrapped as train
        trains = [e for e in inside if e[0] == "wrap_env" and e[2]]
        assert trains == [["wrap_env", TASKS[task].name, True, 8]] * 2
        # every chunk starts 8 puzzles, observed in one call before the first step
        observed = [e for e in inside if e[0] == "observe"]
        assert observed[0] == ["observe", 8, task] and all(e[2] == task for e in observed)
        ended = [e for e in inside if e[0] == "episodes_end"]
        assert all(e[1] == task for e in ended)
        # max_reasoning_steps=3: every episode ends within 3 steps, and some end in a chunk
        assert ended and all(1 <= s <= 3 for e in ended for s in e[3])
        # after the task: evaluation of every task (the row of the accuracy matrix)
        after = events[end + 1 : end + 3]
        assert after == [["wrap_env", "recolour", False, 8], ["wrap_env", "recolour-b", False, 8]]
    assert kinds.count("before_task") == 2 and kinds.count("after_task") == 2
    # options are asked for every row before the first puzzles and for each row's next puzzle,
    # then again for exactly the rows whose episode just ended
    asked = [e for e in events if e[0] in ("reset_options", "episodes_end", "wrap_env")]
    for k, event in enumerate(asked):
        if event[0] == "wrap_env" and event[2]:
            assert asked[k + 1] == asked[k + 2] == ["reset_options", list(range(8))]
        if event[0] == "episodes_end":
            assert asked[k + 1] == ["reset_options", event[2]]
    # replay_batch and penalty are asked once per optimizer step
    assert recorder.per_step == {"replay_batch": 12, "penalty": 12}
    assert results["env_steps"] == 12 * 8


def test_plugin_state_is_checkpointed_by_name_and_resumed_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = RecordingPlugin()
    reference = make_run(tmp_path / "whole", whole).run()

    interrupt_after_saves(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        make_run(tmp_path / "split", RecordingPlugin()).run()

    saved = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert sorted(saved["plugins"]) == ["recorder", "replay"]  # every plugin, by name
    resumed_plugin = RecordingPlugin()
    resumed = make_run(tmp_path / "split", resumed_plugin).run()
    assert resumed_plugin.events == whole.events
    assert resumed_plugin.per_step == whole.per_step
    assert resumed["accuracy_matrix"] == reference["accuracy_matrix"]
    assert resumed["curves"] == reference["curves"]


def test_a_plugin_renamed_dropped_or_reconfigured_on_resume_is_refused(tmp_path: Path) -> None:
    def run(*plugins, configs=None):
        return ContinualRun(
            TASKS,
            AGENT,
            {"name": "replay"},
            SETTINGS,
            tmp_path,
            seed=3,
            device="cpu",
            console=False,
            plugins=plugins,
            plugin_configs=configs,
        )

    results = run(RecordingPlugin(), configs=[{"_target_": "x.Recorder", "scale": 100}]).run()
    assert results["plugins"] == [
        {
            "name": "recorder",
            "class": "tests.plugins.recording.RecordingPlugin",
            "config": {"_target_": "x.Recorder", "scale": 100},
        }
    ]
    with pytest.raises(ValueError, match=r"plugins\[0\].name was 'recorder' there and is 'other'"):
        run(RecordingPlugin("other"), configs=[{"_target_": "x.Recorder", "scale": 100}]).run()
    with pytest.raises(ValueError, match=r"plugins\[0\].config.scale was 100 there and is 1 now"):
        run(RecordingPlugin(), configs=[{"_target_": "x.Recorder", "scale": 1}]).run()
    with pytest.raises(ValueError, match=r"plugins \(length\) was 1 there and is 0 now"):
        run().run()


class DequeState(Plugin):
    name = "deque"

    def state_dict(self):
        import collections

        return {"recent": collections.deque([1, 2])}


def test_a_state_that_could_not_be_restored_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"plugins.deque.recent: a deque cannot be checkpointed"):
        make_run(tmp_path, DequeState())
    assert not tmp_path.joinpath("checkpoints").exists()


def test_unreadable_checkpoints_stop_the_run_instead_of_starting_over(tmp_path: Path) -> None:
    make_run(tmp_path).run()
    before = (tmp_path / "results.json").read_bytes()
    for name in ("last.pt", "previous.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        with pytest.raises(RuntimeError, match="no checkpoint in .* can be read"):
            make_run(tmp_path).run()
    assert (tmp_path / "results.json").read_bytes() == before


def test_recording_plugin_state_round_trips() -> None:
    plugin = RecordingPlugin()
    plugin.events = [["before_task", 0], ["episodes_end", 0, [1, 2], [3, 1]]]
    plugin.per_step["penalty"] = 5
    other = RecordingPlugin()
    other.load_state_dict(json.loads(json.dumps(plugin.state_dict())))
    assert other.events == plugin.events and other.per_step == plugin.per_step


class Alternate(Plugin):
    """Chooses each new puzzle's ARCGen task by row parity, flipping after every episode end."""

    name = "alternate"

    def __init__(self) -> None:
        self.flipped = np.zeros(8, dtype=bool)
        self.ended: list[int] = []
        self.credited: list[tuple[int, int]] = []

    def reset_options(self, rows):
        return [{"task_id": int((r % 2) ^ self.flipped[r])} for r in rows]

    def on_episodes_end(self, task, rows, solved, cell_accuracy, steps, options):
        # the finished puzzle was drawn with the choice made when it started: credit it there
        for row, chosen in zip(rows, options):
            self.credited.append((int(row), chosen["task_id"]))
        self.ended += [int(r) for r in rows]
        self.flipped[rows] ^= True


def test_per_row_reset_options_steer_every_new_puzzle() -> None:
    from trmgym.agents.trm_agent import TRMAgent
    from trmgym.runner import TaskTrainer

    task = TaskSpec(
        "two-programs",
        "trmgym/ARCGen-v0",
        {"families": ["colour_map"], "tasks_per_family": 2, "min_size": 3, "max_size": 3},
    )
    agent = TRMAgent(AGENT, canvas=(3, 3), max_steps=3, seed=0, device="cpu")
    chooser = Alternate()
    trainer = TaskTrainer(
        agent,
        task,
        batch_size=8,
        max_steps=3,
        canvas=(3, 3),
        seed=1,
        plugins=Plugins([chooser]),
    )
    # the first puzzles follow the first choice: task = row parity
    assert trainer.obs["task_id"].tolist() == [0, 1] * 4
    ends = np.zeros(8, dtype=int)
    for _ in range(9):
        before = len(chooser.ended)
        playing = trainer.obs["task_id"].copy()  # each row's puzzle in flight
        trainer.train(1)
        for row, credited in chooser.credited[before:]:
            assert credited == playing[row]  # outcomes are credited to the options drawn with
        for row in chooser.ended[before:]:
            ends[row] += 1
        # a row's current puzzle was chosen when its previous one started (one-puzzle lookahead):
        # after e episode ends, the row plays the choice made after e - 1 flips
        expected = (np.arange(8) % 2) ^ (np.maximum(ends - 1, 0) % 2) * (ends > 0)
        assert trainer.obs["task_id"].tolist() == expected.tolist()
    assert ends.min() >= 3  # every row finished at least 3 episodes (3-step limit)


def test_plugin_answers_of_the_wrong_kind_name_the_plugin() -> None:
    one_mapping = Fixed("curriculum")
    one_mapping.reset_options = lambda rows: {"blanks": 2}  # an instance hook counts too
    plugins = Plugins([one_mapping])
    assert plugins.chooses_options
    with pytest.raises(TypeError, match="'curriculum': reset_options must return None or a list"):
        plugins.reset_options(np.array([0, 1]))
    one_mapping.reset_options = lambda rows: ["blanks", "task_id"]
    with pytest.raises(TypeError, match="'curriculum': reset_options entry 0 must be a mapping"):
        plugins.reset_options(np.array([0, 1]))
    model = torch.nn.Linear(1, 1)
    for penalty, error, match in [
        (torch.tensor(float("nan")), FloatingPointError, "'p': penalty is nan"),
        (torch.ones(3), TypeError, r"'p': penalty must return None or a scalar tensor, got Tensor"),
        (0.5, TypeError, "'p': penalty must return None or a scalar tensor, got float"),
    ]:
        with pytest.raises(error, match=match):
            Plugins([Fixed("p", penalty=penalty)]).penalty(model)
    with pytest.raises(ValueError, match=r"the strategy is a plugin named after it.*\['replay'\]"):
        make_run(Path("/nonexistent"), Fixed("replay"))
