"""The few-shot experiment end to end on tiny settings: fewshot.json's schema and values,
determinism, resume after an interrupted method, the configuration guard, the CLI, and
``eval.fewshot`` inside a continual run."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from trmgym.agents.trm import TRM, TRMConfig
from trmgym.agents.trm_agent import TRMAgentConfig
from trmgym.meta.fewshot import (
    FEWSHOT_FILE,
    FewShotSplits,
    TransferProbe,
    evaluate_method,
    evaluate_splits,
    pack_batches,
    run_fewshot,
)
from trmgym.meta.maml import MAML
from trmgym.meta.settings import FewShotConfig, MetaConfig, TTTSettings
from trmgym.meta.tasks import FewShotBatch, TRMObjective

CONFIG = FewShotConfig(
    families=["colour_map"],
    heldout_families=["flip"],
    train_tasks_per_family=4,
    heldout_tasks_per_family=2,
    max_size=4,
    arc_tasks=1,
    k_shots=[1, 2],
    steps=[0, 1, 3],
    query=2,
    methods=["scratch", "pretrained", "fomaml", "ttt"],
    ttt=TTTSettings(steps=2, augmentations=2, vote_augmentations=2, batch_size=4),
    workers=1,
)
META = MetaConfig(meta_steps=3, meta_batch=2, train_shots=2, query=1, log_every=2)
AGENT = TRMAgentConfig(model={"hidden_size": 32, "num_heads": 2}, warmup_steps=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def model() -> TRM:
    return TRM(TRMConfig.tiny(seq_len=16, hidden_size=32, num_heads=2))


def run(path: Path, config: FewShotConfig = CONFIG, **kw) -> dict:
    kw.setdefault("make_model", model)
    return run_fewshot(config, META, AGENT, path, seed=0, say=lambda _: None, **kw)


def _broken_builder() -> TRM:
    """A model builder that fails (in the worker process that calls it)."""
    raise RuntimeError("the builder broke")


def test_fewshot_json_has_every_method_split_and_k(tmp_path: Path) -> None:
    logged: list[tuple[str, float, int]] = []
    doc = run(tmp_path, scalars=lambda *a: logged.append(a))
    saved = json.loads((tmp_path / FEWSHOT_FILE).read_text())
    assert saved == json.loads(json.dumps(doc))
    assert doc["complete"] is True
    assert list(doc["methods"]) == ["scratch", "pretrained", "fomaml", "ttt"]
    for name, entries in doc["methods"].items():
        keys = {(e["split"], e["k_shot"]) for e in entries}
        shots = (2,) if name == "ttt" else (1, 2)  # ttt: the most demos only
        assert keys == {
            (s, k) for s in ("heldout_params", "heldout_families", "arc") for k in shots
        }, name
        for entry in entries:
            steps = [2] if name == "ttt" else [0, 1, 3]
            assert entry["steps"] == steps
            assert len(entry["accuracy"]) == len(entry["ci95"]) == len(steps)
            assert all(0.0 <= a <= 1.0 for a in entry["accuracy"])
            for a, ci in zip(entry["accuracy"], entry["ci95"]):
                if ci is not None:
                    assert ci[0] <= a + 1e-12 and a <= ci[1] + 1e-12
            assert (
                entry["tasks"]
                == {"heldout_params": 2, "heldout_families": 2, "arc": 1}[entry["split"]]
            )
    assert {"pass1", "pass2"} <= set(doc["methods"]["ttt"][0])
    assert doc["ttt_base"] in ("scratch", "pretrained", "fomaml")
    heldout = set(doc["heldout_tasks"]["heldout_params"]) | set(
        doc["heldout_tasks"]["heldout_families"]
    )
    assert not heldout & set(doc["meta_training_tasks"])
    assert (tmp_path / "checkpoints" / "fewshot_fomaml.pt").is_file()
    tags = {tag for tag, _, _ in logged}
    assert "meta/fomaml/loss" in tags and "meta/pretrained/loss" in tags
    assert "fewshot/heldout_params/fomaml/k2" in tags and "fewshot/heldout_params/ttt/k2" in tags


def test_scratch_at_zero_steps_is_the_untrained_models_accuracy(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["scratch"], arc_tasks=0, heldout_families=[])
    doc = run(tmp_path, config)
    torch.manual_seed(0)
    net = model()
    splits = FewShotSplits(config)
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(3,)))
    batch = splits.heldout_batches(rng)["heldout_params"][0].take(2)
    objective = TRMObjective(net)
    with torch.no_grad():
        right = (
            objective.predict(objective.params(), batch.query_x.flatten(0, 1))
            == batch.query_y.flatten(0, 1)
        ).all(-1)
    entry = next(e for e in doc["methods"]["scratch"] if e["k_shot"] == 2)
    assert entry["accuracy"][0] == pytest.approx(float(right.float().mean()))


def test_a_second_run_gives_the_same_numbers(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["pretrained", "maml"], arc_tasks=0)
    a, b = run(tmp_path / "a", config), run(tmp_path / "b", config)
    assert a["methods"] == b["methods"]


def test_an_interrupted_run_resumes_after_its_last_finished_method(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["scratch", "pretrained", "anil"], arc_tasks=0)
    whole = run(tmp_path / "whole", config)

    def stop_after_pretrained(line: str) -> None:
        if line.startswith("pretrained:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_fewshot(
            config,
            META,
            AGENT,
            tmp_path / "cut",
            seed=0,
            make_model=model,
            say=stop_after_pretrained,
        )
    partial = json.loads((tmp_path / "cut" / FEWSHOT_FILE).read_text())
    assert list(partial["methods"]) == ["scratch", "pretrained"] and not partial["complete"]
    lines: list[str] = []
    resumed = run_fewshot(
        config, META, AGENT, tmp_path / "cut", seed=0, make_model=model, say=lines.append
    )
    assert (
        "scratch: done already, skipped" in lines and "pretrained: done already, skipped" in lines
    )
    assert resumed["methods"] == whole["methods"]


def test_worker_processes_give_the_numbers_of_one_thread_in_this_process(tmp_path: Path) -> None:
    """fewshot.workers=2 runs the methods side by side (one thread each, as the one_thread
    fixture gives this process): the same document, TensorBoard points and checkpoints."""
    config = replace(CONFIG, methods=["scratch", "pretrained", "fomaml", "ttt"], arc_tasks=0)
    here: list[tuple] = []
    there: list[tuple] = []
    lines: list[str] = []
    one = run(tmp_path / "one", config, scalars=lambda *a: here.append(a))
    two = run_fewshot(
        replace(config, workers=2),
        META,
        AGENT,
        tmp_path / "two",
        seed=0,
        make_model=model,
        say=lines.append,
        scalars=lambda *a: there.append(a),
    )
    assert two["methods"] == one["methods"]
    assert list(two["methods"]) == ["scratch", "pretrained", "fomaml", "ttt"]  # config order
    assert (two["best"], two["ttt_base"]) == (one["best"], one["ttt_base"])
    assert sorted(there) == sorted(here)
    assert sum(line.startswith(("scratch:", "pretrained:", "fomaml:")) for line in lines) == 3
    for method in ("scratch", "pretrained", "fomaml"):
        a = torch.load(tmp_path / "one" / "checkpoints" / f"fewshot_{method}.pt", weights_only=True)
        b = torch.load(tmp_path / "two" / "checkpoints" / f"fewshot_{method}.pt", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), method
    # workers is how a run executes, not what it measures: a resume may change it
    assert two["config"] == one["config"] and "workers" not in two["config"]["fewshot"]
    again = run(tmp_path / "two", replace(config, workers=1))
    assert again == two
    # one method left to run goes in this process, with a worker's share of the threads
    torch.set_num_threads(2)
    try:
        alone = run(tmp_path / "alone", replace(config, methods=["fomaml"], workers=2))
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(1)
    assert alone["methods"]["fomaml"] == one["methods"]["fomaml"]


def test_an_interrupt_ends_the_workers_at_once_and_keeps_the_finished_method(
    tmp_path: Path,
) -> None:
    config = replace(CONFIG, methods=["scratch", "pretrained", "fomaml"], arc_tasks=0, workers=2)
    finished: list[str] = []

    def interrupt(line: str) -> None:  # Ctrl-C just after the first method is recorded
        finished.append(line.split(":")[0])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_fewshot(config, META, AGENT, tmp_path, seed=0, make_model=model, say=interrupt)
    assert multiprocessing.active_children() == []  # no worker goes on to the next method
    doc = json.loads((tmp_path / FEWSHOT_FILE).read_text())
    assert list(doc["methods"]) == finished and not doc["complete"]


def test_workers_need_a_picklable_model_builder(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["scratch", "pretrained"], arc_tasks=0, workers=2)
    with pytest.raises(ValueError, match=r"fewshot\.workers=2 .* make_model must be picklable"):
        run(tmp_path, config, make_model=lambda: model())
    assert not (tmp_path / FEWSHOT_FILE).exists()  # refused before anything runs


def test_a_failing_worker_stops_the_run_and_a_resume_finishes_it(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["scratch", "pretrained"], arc_tasks=0, workers=2)
    with pytest.raises(RuntimeError, match="the builder broke"):
        run(tmp_path / "cut", config, make_model=_broken_builder)
    assert not (tmp_path / "cut" / FEWSHOT_FILE).exists()  # no method finished: none recorded
    here = replace(config, workers=1)  # the same numbers (one thread), without spawning again
    assert run(tmp_path / "cut", here)["methods"] == run(tmp_path / "whole", here)["methods"]


def test_a_run_directory_of_another_configuration_is_refused(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["scratch"], arc_tasks=0)
    run(tmp_path, config)
    before = (tmp_path / FEWSHOT_FILE).read_text()
    with pytest.raises(ValueError, match=r"fewshot\.steps was \[0, 1, 3\], now \[0, 2\]"):
        run(tmp_path, replace(config, steps=[0, 2]))
    assert (tmp_path / FEWSHOT_FILE).read_text() == before  # nothing overwritten


def test_evaluation_packs_every_split_into_one_call_with_the_same_scores() -> None:
    """Packing tasks of every split (query sets padded and masked) changes no task's score."""
    config = replace(CONFIG, arc_tasks=4, k_shots=[1, 2, 3])
    splits = FewShotSplits(config)
    groups = splits.heldout_batches(np.random.default_rng(0))
    # uneven query sets: cut one split's query set to a single grid
    groups["heldout_families"] = [
        b._replace(query_x=b.query_x[:, :1], query_y=b.query_y[:, :1])
        for b in groups["heldout_families"]
    ]
    torch.manual_seed(0)
    learner = MAML(TRMObjective(model()), inner_lr=0.5, adapt="all")
    calls: list[int] = []
    curve = learner.adaptation_curve

    def counted(batch, *args, **kw):
        calls.append(batch.num_tasks)
        return curve(batch, *args, **kw)

    learner.adaptation_curve = counted
    for k in (1, 2):
        calls.clear()
        packed = evaluate_splits(learner, groups, k, [0, 1, 3])
        assert len(calls) == 1  # one vmapped call for every split
        assert list(packed) == [s for s in groups if any(b.shots >= k for b in groups[s])]
        for split, group in groups.items():
            rows = [curve(b.take(k), [0, 1, 3]) for b in group if b.shots >= k]
            expected = torch.cat(rows).numpy()
            np.testing.assert_allclose(packed[split], expected, atol=1e-6)
            assert evaluate_method(learner, group, k, [0, 1, 3]) == pytest.approx(expected)
    calls.clear()
    chunked = evaluate_splits(learner, groups, 1, [0, 1], chunk=3)
    assert len(calls) > 1 and all(n == 3 for n in calls[:-1]) and 1 <= calls[-1] <= 3
    np.testing.assert_allclose(
        np.concatenate(list(chunked.values())),
        np.concatenate(list(evaluate_splits(learner, groups, 1, [0, 1]).values())),
        atol=1e-6,
    )
    assert evaluate_splits(learner, groups, 9, [0]) == {}  # no task has 9 demos


def test_pack_batches_pads_short_query_sets_and_masks_them() -> None:
    g = torch.Generator().manual_seed(0)

    def batch(tasks: int, k: int, q: int) -> FewShotBatch:
        grids = [torch.randint(1, 9, (tasks, n, 4), generator=g) for n in (k, k, q, q)]
        return FewShotBatch(*grids, torch.arange(tasks))

    a, b = batch(2, 2, 1), batch(3, 2, 3)
    packed, mask = pack_batches([a, b])
    assert packed.query_x.shape == (5, 3, 4) and mask.dtype == torch.bool
    assert mask.tolist() == [[True, False, False]] * 2 + [[True, True, True]] * 3
    assert torch.equal(packed.query_x[:2, 0], a.query_x[:, 0])
    assert torch.equal(packed.query_y[:2, 1:], a.query_y[:, :1].expand(-1, 2, -1))  # real grids
    assert torch.equal(packed.support_x, torch.cat([a.support_x, b.support_x]))
    assert torch.equal(packed.task_ids, torch.tensor([0, 1, 0, 1, 2]))
    with pytest.raises(ValueError, match=r"batches must share k, got k = \[2, 1\]"):
        pack_batches([a, batch(1, 1, 1)])
    with pytest.raises(ValueError, match="at least one batch"):
        pack_batches([])


def test_transfer_probe_scores_a_model_without_changing_it(tmp_path: Path) -> None:
    probe = TransferProbe(replace(CONFIG, arc_tasks=0), META, seed=0)
    net = model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    row = probe.evaluate(net)
    assert set(row) == {"heldout_params", "heldout_families"}
    assert set(row["heldout_params"]) == {"k1", "k2"}
    assert all(len(v) == 3 for by_k in row.values() for v in by_k.values())
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    # the same numbers as the few-shot experiment's scratch rule
    learner = MAML(TRMObjective(net), inner_lr=META.inner_lr, adapt="all")
    curve = learner.adaptation_curve(probe.batches["heldout_params"][0].take(1), [0, 1, 3])
    assert row["heldout_params"]["k1"] == pytest.approx(curve.mean(0).tolist())
    with pytest.raises(ValueError, match=r"eval\.fewshot needs the TRM agent on a 4x4 canvas"):
        probe.evaluate(TRM(TRMConfig.tiny(seq_len=9)))


def test_eval_fewshot_fills_a_fewshot_matrix_in_a_continual_run(tmp_path: Path) -> None:
    from tests.tiny_run import AGENT as RUN_AGENT
    from tests.tiny_run import SETTINGS, TASKS
    from trmgym.experiment import ContinualRun

    config = replace(CONFIG, max_size=3, arc_tasks=0, heldout_families=[], k_shots=[1])
    probe = TransferProbe(config, META, seed=0)
    job = ContinualRun(
        TASKS, RUN_AGENT, {"name": "naive"}, SETTINGS, tmp_path, transfer_probe=probe
    )
    results = job.run()
    matrix = results["fewshot_matrix"]
    assert len(matrix) == 2 and all(set(row) == {"heldout_params"} for row in matrix)
    assert len(results["fewshot_init"]["heldout_params"]["k1"]) == 3
    assert results["fewshot_eval"]["steps"] == [0, 1, 3]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["fewshot_matrix"] == matrix
    from trmgym.report import write_report

    html = write_report(tmp_path).read_text()
    assert "Few-shot transfer after each task" in html and "after recolour-b" in html
    # the probe is part of the configuration: resuming without it is refused
    with pytest.raises(ValueError, match="eval"):
        ContinualRun(TASKS, RUN_AGENT, {"name": "naive"}, SETTINGS, tmp_path).run()


def test_eval_fewshot_refuses_a_canvas_other_than_the_protocols(tmp_path: Path) -> None:
    from tests.tiny_run import AGENT as RUN_AGENT
    from tests.tiny_run import SETTINGS, TASKS
    from trmgym.experiment import ContinualRun

    probe = TransferProbe(replace(CONFIG, arc_tasks=0), META, seed=0)  # 4x4; the tasks are 3x3
    with pytest.raises(ValueError, match=r"set run\.canvas=\[4,4\]"):
        ContinualRun(TASKS, RUN_AGENT, {"name": "naive"}, SETTINGS, tmp_path, transfer_probe=probe)


def _cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "trmgym.cli", "run", "experiment=fewshot_arcgen", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


TINY = [
    "fewshot.families=[colour_map]",
    "fewshot.heldout_families=[flip]",
    "fewshot.train_tasks_per_family=3",
    "fewshot.heldout_tasks_per_family=2",
    "fewshot.max_size=3",
    "fewshot.arc_tasks=1",
    "fewshot.k_shots=[1]",
    "fewshot.steps=[0,1]",
    "fewshot.methods=[scratch,maml,ttt]",
    "fewshot.ttt.steps=1",
    "fewshot.ttt.augmentations=2",
    "fewshot.ttt.vote_augmentations=2",
    "meta.meta_steps=2",
    "meta.meta_batch=2",
    "+agent.model.hidden_size=32",
    "+agent.model.num_heads=2",
    "console=false",
]


# the memory method too, its bank set from the command line
WITH_MEMORY = [
    *(o for o in TINY if not o.startswith("fewshot.methods")),
    "fewshot.methods=[scratch,maml,memory,ttt]",
    "agent/memory=bank",
    "agent.memory.capacity=64",
]


def test_trmgym_run_experiment_fewshot_arcgen_writes_its_outputs(tmp_path: Path) -> None:
    done = _cli(tmp_path, *WITH_MEMORY, "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "out"
    doc = json.loads((out / FEWSHOT_FILE).read_text())
    assert list(doc["methods"]) == ["scratch", "maml", "memory", "ttt"] and doc["complete"]
    assert doc["config"]["memory"]["capacity"] == 64
    assert all(entry["steps"] == [0] for entry in doc["methods"]["memory"])
    assert (out / "plots" / "fewshot.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "Few-shot transfer" in html and "heldout_params, k = 1" in html
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / ".hydra" / "config.yaml").is_file()
    # trmgym report rewrites the report of a few-shot run
    (out / "report.html").unlink()
    report = subprocess.run(
        [sys.executable, "-m", "trmgym.report", str(out)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    assert (out / "report.html").is_file()
    # started again with the same command line: already finished (the bank is the same)
    same = _cli(tmp_path, *WITH_MEMORY, "hydra.run.dir=out")
    assert same.returncode == 0, same.stderr[-2000:]
    assert "already finished" in (out / "cli.log").read_text()
    # started again with other settings: refused, naming the key, nothing rewritten
    again = _cli(tmp_path, *WITH_MEMORY, "fewshot.steps=[0,2]", "hydra.run.dir=out")
    assert again.returncode == 2
    assert "fewshot.steps was [0, 1], now [0, 2]" in again.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+fewshot.bogus=1", "fewshot has no key 'bogus'"),
        ("agent=sb3_ppo", "a few-shot experiment meta-trains the TRM network: use agent=trm"),
        ("meta.backend=learn2learn", "meta.backend"),
        ("fewshot.methods=[maml,reptile]", "fewshot.methods lists 'reptile'"),
        ("agent/memory=bank", "agent.memory configures the bank of the `memory` few-shot method"),
        (
            "fewshot.methods=[memory] agent/memory=bank agent.memory.capacity=2",
            "agent.memory.capacity: a batch writes up to",
        ),
    ],
)
def test_bad_fewshot_command_lines_fail_before_anything_runs(
    tmp_path: Path, override: str, message: str
) -> None:
    keep = [o for o in TINY if not o.startswith("+agent.") or not override.startswith("agent=")]
    done = _cli(tmp_path, *keep, *override.split())
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert not list(tmp_path.glob("runs/**/fewshot.json"))


def test_the_plot_draws_every_method_into_one_axes_per_split_and_k(tmp_path: Path) -> None:
    from trmgym.report import plot_fewshot

    doc = run(tmp_path, replace(CONFIG, methods=["scratch", "pretrained", "ttt"], arc_tasks=0))
    image = plot_fewshot(doc, tmp_path / "fewshot.png")
    assert image.ndim == 3 and (tmp_path / "fewshot.png").stat().st_size > 1000
    # rebuild the figure's axes the way plot_fewshot does and count lines per panel
    import matplotlib

    calls: list = []
    original = matplotlib.figure.Figure.add_subplot

    def spy(self, *args, **kwargs):
        axes = original(self, *args, **kwargs)
        calls.append(axes)
        return axes

    matplotlib.figure.Figure.add_subplot = spy
    try:
        plot_fewshot(doc)
    finally:
        matplotlib.figure.Figure.add_subplot = original
    assert len(calls) == 4  # (heldout_params, heldout_families) x (k=1, k=2)
    labels = sorted(tuple(sorted(line.get_label() for line in axes.get_lines())) for axes in calls)
    # scratch and pretrained everywhere; ttt with the most demos (k=2) only
    assert labels == sorted(
        [("pretrained", "scratch")] * 2 + [("pretrained", "scratch", "ttt")] * 2
    )


def test_a_continual_run_and_a_fewshot_run_never_share_a_directory(tmp_path: Path) -> None:
    done = _cli(tmp_path, *TINY, "fewshot.methods=[scratch]", "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-2000:]
    before = (tmp_path / "out" / "report.html").read_text()
    other = subprocess.run(
        [sys.executable, "-m", "trmgym.cli", "run", "experiment=smoke", "hydra.run.dir=out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert other.returncode == 2
    assert "holds a few-shot run (fewshot.json)" in other.stderr
    assert (tmp_path / "out" / "report.html").read_text() == before
    assert not (tmp_path / "out" / "results.json").exists()
    (tmp_path / "cont" / "checkpoints").mkdir(parents=True)
    (tmp_path / "cont" / "results.json").write_text("{}")
    refused = _cli(tmp_path, *TINY, "hydra.run.dir=cont")
    assert refused.returncode == 2 and "holds a continual run" in refused.stderr
    assert not (tmp_path / "cont" / "fewshot.json").exists()


def test_k1_is_scored_on_the_same_pairs_whatever_other_k_a_run_lists() -> None:
    """One stream drew every held-out pair after the first max(k_shots) demos, so a run with
    k_shots=[1] and one with [1, 2, 3] scored k=1 on different demos and query grids."""
    from trmgym.meta.fewshot import FewShotSplits

    def batches(k_shots: list[int], heldout_families: list[str]) -> dict:
        config = FewShotConfig(
            k_shots=k_shots,
            heldout_families=heldout_families,
            arc_tasks=0,
            train_tasks_per_family=3,
            heldout_tasks_per_family=2,
            max_size=4,
        )
        rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(3,)))
        return FewShotSplits(config).heldout_batches(rng)

    one, three = batches([1], ["flip"]), batches([1, 2, 3], ["flip"])
    for split in ("heldout_params", "heldout_families"):
        (a,), (b,) = one[split], three[split]
        assert torch.equal(a.query_x, b.query_x) and torch.equal(a.query_y, b.query_y)
        assert torch.equal(a.support_x, b.support_x[:, :1])
        assert torch.equal(a.support_y, b.support_y[:, :1])
        assert not torch.equal(b.support_x[:, 0], b.support_x[:, 1])  # fresh pairs, not copies
    # nor does a split depend on whether the other one is there
    (alone,) = batches([1], [])["heldout_params"]
    assert torch.equal(alone.query_x, one["heldout_params"][0].query_x)
