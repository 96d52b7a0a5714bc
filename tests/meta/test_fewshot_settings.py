"""The few-shot protocol's settings and splits: bad values are named, held-out tasks are never
meta-trained on."""

from __future__ import annotations

import re

import numpy as np
import pytest

from trmgym.envs.arcgen_families import FAMILIES
from trmgym.meta.settings import META_ALGORITHMS, METHODS, FewShotConfig, MetaConfig

SMALL = dict(
    families=["colour_map", "gravity"],
    heldout_families=["flip"],
    train_tasks_per_family=6,
    heldout_tasks_per_family=3,
    max_size=5,
    arc_tasks=2,
)


def splits(**overrides):
    from trmgym.meta.fewshot import FewShotSplits

    return FewShotSplits(FewShotConfig(**{**SMALL, **overrides}))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"families": ["colour_mapp"]}, "fewshot.families lists 'colour_mapp'"),
        ({"families": []}, "fewshot.families must name at least one family"),
        ({"families": "colour_map"}, "fewshot.families must be a list"),
        ({"heldout_families": ["colour_map"]}, "must not repeat a meta-training family"),
        ({"families": ["rotate"]}, "'rotate' has 3 programs"),
        ({"k_shots": [3, 1]}, "fewshot.k_shots must be a non-empty increasing list"),
        ({"k_shots": [0]}, "fewshot.k_shots must be an int >= 1"),
        ({"steps": [0, 1.5]}, "fewshot.steps must be an int >= 0"),
        ({"methods": ["maml", "reptile"]}, "fewshot.methods lists 'reptile'"),
        ({"methods": ["maml", "maml"]}, "lists an entry twice"),
        ({"max_size": 40}, "min_size..max_size"),
        ({"train_tasks_per_family": True}, "fewshot.train_tasks_per_family must be an int"),
        ({"finetune_lr": 0}, "fewshot.finetune_lr must be a number > 0"),
        ({"ttt": {"stepz": 3}}, "fewshot.ttt.stepz is not a TTT setting"),
        ({"ttt": {"steps": 0}}, "fewshot.ttt.steps must be an int >= 1"),
        ({"ttt": {"optimizer": "lbfgs"}}, "fewshot.ttt.optimizer must be one of ['sgd', 'adam']"),
        ({"ttt": {"colors": "yes"}}, "fewshot.ttt.colors must be true or false"),
        ({"workers": 0}, "fewshot.workers must be an int >= 1, got 0"),
        ({"workers": True}, "fewshot.workers must be an int >= 1, got True"),
    ],
)
def test_bad_fewshot_settings_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FewShotConfig(**{**SMALL, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backend": "jax"}, "meta.backend must be one of"),
        ({"meta_batch": 0}, "meta.meta_batch must be an int >= 1"),
        ({"inner_lr": -1.0}, "meta.inner_lr must be a number > 0"),
        ({"inner_steps": 2.0}, "meta.inner_steps must be an int >= 1"),
    ],
)
def test_bad_meta_settings_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        MetaConfig(**overrides)


def test_methods_name_every_algorithm_of_the_maml_family() -> None:
    from trmgym.meta.maml import ALGORITHMS

    assert tuple(ALGORITHMS) == META_ALGORITHMS
    assert set(METHODS) == {"scratch", "pretrained", "memory", "ttt", *META_ALGORITHMS}


def test_heldout_tasks_never_appear_in_meta_training() -> None:
    split = splits()
    train = set(split.train_ids.tolist())
    for name, ids in split.heldout.items():
        assert not train & set(ids.tolist()), name
    # not even under another task id: the programs (the rule, not the input style) differ
    train_programs = split.programs(split.train_ids)
    assert len(train_programs) == 2 * 6  # pairwise different programs
    for ids in split.heldout.values():
        assert not train_programs & split.programs(ids)
    # held-out parameters are tasks of the meta-training families; held-out families are not
    families = {
        name: split.source.describe_task(int(t))[0]
        for name, ids in split.heldout.items()
        for t in ids
    }
    assert {split.source.describe_task(int(t))[0] for t in split.heldout["heldout_params"]} == {
        "colour_map",
        "gravity",
    }
    assert {split.source.describe_task(int(t))[0] for t in split.heldout["heldout_families"]} == {
        "flip"
    }
    assert families


def test_the_disjointness_check_fails_on_a_shared_program() -> None:
    split = splits()
    split.heldout["heldout_params"] = np.concatenate(
        [split.heldout["heldout_params"], split.train_ids[:1]]
    )
    with pytest.raises(ValueError, match="heldout_params shares programs with meta-training"):
        split.check_disjoint()


def test_arc_split_holds_real_evaluation_tasks_that_fit_the_canvas() -> None:
    split = splits()
    assert len(split.arc) == 2
    for task in split.arc:
        assert all(max(g.shape) <= 5 for pair in task.train + task.test for g in pair)
    batches = split.heldout_batches(np.random.default_rng(0))
    assert sum(b.num_tasks for b in batches["arc"]) == 2
    for batch in batches["arc"]:
        assert batch.shots <= 3 and batch.query_x.shape[2] == 25
    # each task's own pairs: its first min(train, 3) demos and its test pairs, in order
    from trmgym.meta.fewshot import arc_batch

    for task in split.arc:
        own = arc_batch(task, 5)
        k = min(own.shots, 3)
        found = [
            b
            for b in batches["arc"]
            for i in range(b.num_tasks)
            if b.task_ids[i] == own.task_ids[0]
            and np.array_equal(b.support_x[i].numpy(), own.support_x[0, :k].numpy())
            and np.array_equal(b.query_y[i].numpy(), own.query_y[0].numpy())
        ]
        assert len(found) == 1
    # ARCGen splits: max(k_shots) support pairs and `query` query pairs per task
    params = batches["heldout_params"][0]
    assert params.support_x.shape == (6, 3, 25)
    assert params.query_x.shape == (6, 4, 25)


def test_heldout_pairs_are_reproducible_from_the_seed() -> None:
    a = splits().heldout_batches(np.random.default_rng(7))["heldout_params"][0]
    b = splits().heldout_batches(np.random.default_rng(7))["heldout_params"][0]
    for x, y in zip(a, b):
        assert np.array_equal(x.numpy(), y.numpy())


def test_family_with_few_programs_is_refused_only_as_a_meta_training_family() -> None:
    assert FAMILIES["flip"].num_programs < 9
    FewShotConfig(**SMALL)  # flip as a held-out family is fine
