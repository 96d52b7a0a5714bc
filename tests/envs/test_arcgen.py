"""Tests for trmgym.envs.arcgen: procedural ARC-style task families (trmgym/ARCGen-v0)."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from tests.envs.do_nothing import do_nothing_solves
from trmgym.envs.arcgen import ARCGenEnv, ARCGenSource, ARCGenVectorEnv, tokens_to_grid
from trmgym.envs.arcgen_families import FAMILIES, FAMILY_NAMES, OUTSIDE, TaskFamily
from trmgym.envs.tokens import COLOR_OFFSET, NUM_COLORS, PAD

STYLE_KEYS = ("palette", "density")


def crop(colors: np.ndarray) -> np.ndarray:
    """The grid at the top-left of an OUTSIDE-padded buffer."""
    inside = colors != OUTSIDE
    return colors[: inside.any(axis=1).sum(), : inside.any(axis=0).sum()]


def pairs(source: ARCGenSource, task_id: int, count: int = 12, seed: int = 0) -> list:
    """``count`` fresh (input, output) colour grids of one task, cropped."""
    inputs, outputs = source.sample_pairs(np.random.default_rng(seed), np.full(count, task_id))
    return [(crop(x), crop(y)) for x, y in zip(inputs, outputs)]


def program_of(params: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in params.items() if k not in STYLE_KEYS))


def one_family(name: str, **kwargs) -> ARCGenSource:
    return ARCGenSource(
        families=[name], tasks_per_family=kwargs.pop("tasks_per_family", 6), **kwargs
    )


# ----------------------------------------------------------------------------- task structure
def test_at_least_eight_families_and_task_count() -> None:
    assert len(FAMILY_NAMES) >= 8
    source = ARCGenSource()
    assert source.families == FAMILY_NAMES
    assert source.num_tasks == len(FAMILY_NAMES) * 100
    assert source.shape == (10, 10)
    assert source.option_keys == ("task_id", "family")
    small = ARCGenSource(families=["rotate", "gravity"], tasks_per_family=7)
    assert small.num_tasks == 14
    assert small.describe_task(6)[0] == "rotate" and small.describe_task(7)[0] == "gravity"
    assert small.family_task_ids("gravity") == range(7, 14)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_demos_and_test_pair_run_the_task_program(name: str) -> None:
    source = one_family(name, num_demos=4)
    batch = source.sample(np.random.default_rng(1), 24)
    assert batch.grid.shape == batch.target.shape == (24, 10, 10)
    assert batch.grid.dtype == batch.target.dtype == np.int64
    assert batch.extra["family"] == [name] * 24
    for row in range(24):
        task_id = int(batch.task_id[row])
        assert len(batch.demos[row]) == 4
        for grid, target in [*batch.demos[row], (batch.grid[row], batch.target[row])]:
            expected = source.apply(task_id, tokens_to_grid(grid))
            np.testing.assert_array_equal(tokens_to_grid(target), expected)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_tasks_of_a_family_run_different_programs(name: str) -> None:
    source = one_family(name, tasks_per_family=5)
    programs = [program_of(source.describe_task(i)[1]) for i in range(5)]
    assert len(set(programs)) == min(5, FAMILIES[name].num_programs)
    for a, b in itertools.combinations(range(min(5, FAMILIES[name].num_programs)), 2):
        # the same inputs (drawn for task a) give different outputs under task b's program
        outputs_differ = [
            not np.array_equal(y, source.apply(b, x)) for x, y in pairs(source, a, count=16)
        ]
        assert any(outputs_differ), (name, a, b)


def test_small_families_cycle_their_programs_with_new_styles() -> None:
    source = one_family("rotate", tasks_per_family=7)
    ks = [source.describe_task(i)[1]["k"] for i in range(7)]
    assert sorted(ks[:3]) == [1, 2, 3] and ks[3:6] == ks[:3] and ks[6] == ks[0]
    assert source.describe_task(0)[1] != source.describe_task(3)[1]  # same program, new style


def test_task_parameters_depend_only_on_seed_family_and_index() -> None:
    a = ARCGenSource(tasks_per_family=10)
    b = ARCGenSource(families=["denoise", "colour_map"], tasks_per_family=40)
    assert a.describe_task(0) == b.describe_task(40)  # colour_map task 0
    assert a.describe_task(8 * 10 + 9) == b.describe_task(9)  # denoise task 9
    assert ARCGenSource(tasks_per_family=10).describe_task(33) == a.describe_task(33)
    other = ARCGenSource(tasks_per_family=10, task_seed=1)
    assert [other.describe_task(i) for i in range(10)] != [a.describe_task(i) for i in range(10)]


def test_palettes_avoid_reserved_colours() -> None:
    source = ARCGenSource(tasks_per_family=30)
    for task_id in range(source.num_tasks):
        family, params = source.describe_task(task_id)
        palette = set(params["palette"])
        assert len(palette) == 3 and palette <= set(range(NUM_COLORS))
        for key in FAMILIES[family].reserved_keys:
            assert params[key] not in palette


# ---------------------------------------------------------------------------------- sampling
def test_same_rng_same_batch_and_seeds_matter() -> None:
    source = ARCGenSource(tasks_per_family=5)
    a = source.sample(np.random.default_rng(7), 16)
    b = source.sample(np.random.default_rng(7), 16)
    c = source.sample(np.random.default_rng(8), 16)
    for field in ("grid", "target", "task_id"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for demos_a, demos_b in zip(a.demos, b.demos):
        for (xa, ya), (xb, yb) in zip(demos_a, demos_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.grid, c.grid)


def test_episodes_of_one_task_vary_the_input() -> None:
    source = ARCGenSource(tasks_per_family=3)
    batch = source.sample(np.random.default_rng(0), 8, {"task_id": 4})
    assert (batch.task_id == 4).all()
    assert len({g.tobytes() for g in batch.grid}) > 1


def test_tokens_are_colours_at_the_top_left_with_pad_elsewhere() -> None:
    source = ARCGenSource(tasks_per_family=4, max_size=12)
    batch = source.sample(np.random.default_rng(3), 64)
    grids = [batch.grid, batch.target] + [
        np.stack([d[k][i] for d in batch.demos]) for k in range(3) for i in (0, 1)
    ]
    for tokens in grids:
        content = tokens != PAD
        assert tokens[content].min() >= COLOR_OFFSET and tokens.max() < COLOR_OFFSET + NUM_COLORS
        heights, widths = content.any(axis=2).sum(axis=1), content.any(axis=1).sum(axis=1)
        # the content is exactly the top-left heights x widths rectangle
        assert (content.sum(axis=(1, 2)) == heights * widths).all()
        assert content[:, 0, 0].all()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_grid_sizes_respect_min_and_max_size(name: str) -> None:
    source = one_family(name, min_size=4, max_size=9)
    for task_id in range(3):
        for x, y in pairs(source, task_id, count=20, seed=task_id):
            assert max(y.shape) <= 9 and max(x.shape) <= 9
            if name != "scale_up":
                assert min(x.shape) >= 4


def test_options_select_task_and_family() -> None:
    source = ARCGenSource(tasks_per_family=5)
    rng = np.random.default_rng(0)
    assert (source.sample(rng, 6, {"task_id": 17}).task_id == 17).all()
    batch = source.sample(rng, 40, {"family": "gravity"})
    assert set(batch.task_id.tolist()) <= set(source.family_task_ids("gravity"))
    assert len(set(batch.task_id.tolist())) > 1
    assert set(batch.extra["family"]) == {"gravity"}
    batch = source.sample(rng, 3, {"family": "gravity", "task_id": 21})
    assert (batch.task_id == 21).all()
    everything = source.sample(rng, 200).task_id
    assert len(set(everything.tolist())) > 25


def test_option_errors_name_the_key_and_range() -> None:
    source = ARCGenSource(tasks_per_family=5)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"task_id must be an int in 0\.\.44, got 45"):
        source.sample(rng, 1, {"task_id": 45})
    with pytest.raises(ValueError, match="task_id"):
        source.check_options({"task_id": -1})
    with pytest.raises(TypeError, match="task_id"):
        source.check_options({"task_id": "3"})
    with pytest.raises(ValueError, match=r"family must be one of \['colour_map'"):
        source.check_options({"family": "spiral"})
    with pytest.raises(ValueError, match="not a task of family 'flip'"):
        source.check_options({"family": "flip", "task_id": 0})
    with pytest.raises(ValueError, match="allowed keys"):
        source.check_options({"difficulty": 2})
    with pytest.raises(ValueError, match="task_id"):
        source.describe_task(45)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"families": ["flip", "spiral"]},
            ValueError,
            r"unknown families \['spiral'\]; valid families: \['colour_map'",
        ),
        ({"families": []}, TypeError, "families must be 'all' or a non-empty list"),
        ({"families": ["flip", "flip"]}, ValueError, "twice"),
        ({"tasks_per_family": 0}, ValueError, "tasks_per_family must be an int >= 1"),
        ({"tasks_per_family": 2.5}, TypeError, "tasks_per_family"),
        ({"task_seed": -1}, ValueError, "task_seed must be an int >= 0"),
        ({"max_size": 31}, ValueError, r"max_size must be an int in 3\.\.30"),
        ({"min_size": 2}, ValueError, r"min_size must be an int in 3\.\.10"),
        ({"min_size": 8, "max_size": 6}, ValueError, r"min_size must be an int in 3\.\.6"),
        ({"num_demos": 0}, ValueError, "num_demos must be an int >= 1"),
        ({"num_demos": True}, TypeError, "num_demos"),
    ],
)
def test_argument_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ARCGenSource(**kwargs)


def test_apply_rejects_bad_grids() -> None:
    source = one_family("flip")
    with pytest.raises(ValueError, match="colours 0..9"):
        source.apply(0, np.array([[0, 10]]))
    with pytest.raises(ValueError, match="2-D"):
        source.apply(0, np.zeros(4, dtype=int))


# --------------------------------------------------------------------------- family semantics
def tasks(name: str, count: int = 6) -> tuple[ARCGenSource, list[int]]:
    source = one_family(name, tasks_per_family=count)
    return source, list(range(count))


def test_colour_map_is_a_fixed_non_identity_permutation() -> None:
    source, ids = tasks("colour_map")
    for task_id in ids:
        mapping = source.describe_task(task_id)[1]["mapping"]
        assert sorted(mapping) == list(range(NUM_COLORS)) and mapping != tuple(range(NUM_COLORS))
        for x, y in pairs(source, task_id, count=6):
            np.testing.assert_array_equal(y, np.asarray(mapping)[x])


def test_flip_twice_is_identity_and_diagonals_swap_shape() -> None:
    source, ids = tasks("flip", 4)
    assert {source.describe_task(i)[1]["axis"] for i in ids} == set(FAMILIES["flip"].AXES)
    for task_id in ids:
        axis = source.describe_task(task_id)[1]["axis"]
        for x, y in pairs(source, task_id, count=8):
            np.testing.assert_array_equal(source.apply(task_id, y), x)
            assert y.shape == (x.shape[::-1] if "transpose" in axis else x.shape)


def test_rotate_k_then_four_minus_k_is_identity() -> None:
    source, ids = tasks("rotate", 3)
    by_k = {source.describe_task(i)[1]["k"]: i for i in ids}
    for k, task_id in by_k.items():
        for x, y in pairs(source, task_id, count=8):
            np.testing.assert_array_equal(source.apply(by_k[4 - k] if k != 2 else task_id, y), x)
            assert y.shape == (x.shape[::-1] if k % 2 else x.shape)
    square = np.arange(9).reshape(3, 3) % NUM_COLORS
    np.testing.assert_array_equal(source.apply(by_k[1], square), [[2, 5, 8], [1, 4, 7], [0, 3, 6]])


def test_translate_wraps_or_crops() -> None:
    source, ids = tasks("translate", 12)
    modes = set()
    for task_id in ids:
        params = source.describe_task(task_id)[1]
        dy, dx = params["dy"], params["dx"]
        modes.add(params["mode"])
        for x, y in pairs(source, task_id, count=6):
            assert y.shape == x.shape
            if params["mode"] == "wrap":
                np.testing.assert_array_equal(np.roll(y, (-dy, -dx), axis=(0, 1)), x)
            else:
                h, w = x.shape
                for r, c in itertools.product(range(h), range(w)):
                    inside = 0 <= r - dy < h and 0 <= c - dx < w
                    assert y[r, c] == (x[r - dy, c - dx] if inside else 0)
    assert modes == {"wrap", "crop"}


def test_gravity_leaves_no_floating_cells() -> None:
    source, ids = tasks("gravity", 8)
    directions = set()
    for task_id in ids:
        params = source.describe_task(task_id)[1]
        background, direction = params["background"], params["direction"]
        directions.add(direction)
        turns = {"down": 0, "right": 3, "up": 2, "left": 1}[direction]
        for x, y in pairs(source, task_id, count=8):
            # rotate so that the fall is downwards: no solid cell may sit above an empty one
            down = np.rot90(y, turns)
            assert not ((down[:-1] != background) & (down[1:] == background)).any()
            lines_in = np.rot90(x, turns)
            for column_in, column_out in zip(lines_in.T, down.T):  # order within a line is kept
                np.testing.assert_array_equal(
                    column_in[column_in != background], column_out[column_out != background]
                )
    assert len(directions) > 1


def test_fill_enclosed_fills_only_holes_and_is_idempotent() -> None:
    source, ids = tasks("fill_enclosed")
    filled_any = False
    for task_id in ids:
        params = source.describe_task(task_id)[1]
        for x, y in pairs(source, task_id, count=10):
            changed = x != y
            assert (x[changed] == params["background"]).all() and (
                y[changed] == params["fill"]
            ).all()
            border = np.ones_like(changed)
            border[1:-1, 1:-1] = False
            assert not (changed & border).any()
            np.testing.assert_array_equal(source.apply(task_id, y), y)
            filled_any |= bool(changed.any())
    assert filled_any
    ring = np.array(
        [[0, 0, 0, 0, 0], [0, 4, 4, 4, 0], [0, 4, 0, 4, 0], [0, 4, 4, 4, 0], [0, 0, 0, 0, 0]]
    )
    fill_0 = FAMILIES["fill_enclosed"].apply({"background": 0, "fill": 2}, ring)
    assert fill_0[2, 2] == 2 and (fill_0 != ring).sum() == 1
    ring[1, 2] = 0  # opened: nothing is enclosed any more
    np.testing.assert_array_equal(
        FAMILIES["fill_enclosed"].apply({"background": 0, "fill": 2}, ring), ring
    )


def test_count_to_bar_length_is_the_count() -> None:
    source, ids = tasks("count_to_bar")
    for task_id in ids:
        params = source.describe_task(task_id)[1]
        for x, y in pairs(source, task_id, count=10):
            count = int((x == params["color"]).sum())
            assert count >= 1
            assert y.shape == ((1, count) if params["orientation"] == "horizontal" else (count, 1))
            assert (y == params["bar_color"]).all()


def test_scale_up_output_shape_is_factor_times_input() -> None:
    source, ids = tasks("scale_up", 8)
    for task_id in ids:
        params = source.describe_task(task_id)[1]
        fy, fx = params["factor_y"], params["factor_x"]
        for x, y in pairs(source, task_id, count=8):
            assert y.shape == (fy * x.shape[0], fx * x.shape[1])
            np.testing.assert_array_equal(y[::fy, ::fx], x)  # each block repeats its cell
            blocks = y.reshape(x.shape[0], fy, x.shape[1], fx)
            assert (blocks == blocks[:, :1, :, :1]).all()


def test_denoise_removes_exactly_the_isolated_noise() -> None:
    source, ids = tasks("denoise")
    removed_any = kept_any = False
    for task_id in ids:
        params = source.describe_task(task_id)[1]
        background, noise = params["background"], params["noise"]
        for x, y in pairs(source, task_id, count=10):
            changed = x != y
            assert (x[changed] == noise).all() and (y[changed] == background).all()
            kept = np.pad(y == noise, 1)
            lonely = kept[1:-1, 1:-1] & ~(
                kept[:-2, 1:-1] | kept[2:, 1:-1] | kept[1:-1, :-2] | kept[1:-1, 2:]
            )
            assert not lonely.any()
            removed_any |= bool(changed.any())
            kept_any |= bool((y == noise).any())
    assert removed_any and kept_any


# ------------------------------------------------------------------------------- environments
def test_env_reset_shows_demos_family_and_task() -> None:
    env = ARCGenEnv(tasks_per_family=4, num_demos=2, expose_target=True)
    obs, info = env.reset(seed=0, options={"task_id": 9})
    assert obs["task_id"] == 9 and env.num_tasks == 36
    assert info["family"] == env.source.describe_task(9)[0]
    assert len(info["demos"]) == 2
    expected = env.source.apply(9, tokens_to_grid(obs["grid"]))
    np.testing.assert_array_equal(tokens_to_grid(info["target"]), expected)
    _, reward, terminated, _, info = env.step({"answer": info["target"], "halt": 1})
    assert terminated and info["solved"] and reward > 0.9
    with pytest.raises(ValueError, match="task_id"):
        env.reset(options={"task_id": 36})


def test_vector_env_family_option_and_pickle() -> None:
    env = ARCGenVectorEnv(4, families=["scale_up", "denoise"], tasks_per_family=3)
    obs, info = env.reset(seed=1, options={"family": "denoise"})
    assert obs["grid"].shape == (4, 10, 10)
    assert set(obs["task_id"].tolist()) <= {3, 4, 5}
    assert list(info["family"]) == ["denoise"] * 4
    clone = pickle.loads(pickle.dumps(env.source))
    assert clone.describe_task(4) == env.source.describe_task(4)


def test_families_accepts_any_sequence_of_names_and_rejects_non_names() -> None:
    assert ARCGenSource(families=("flip",), tasks_per_family=2).families == ("flip",)
    assert ARCGenSource(families="denoise", tasks_per_family=2).families == ("denoise",)
    with pytest.raises(TypeError, match="families"):
        ARCGenSource(families=[3])
    with pytest.raises(ValueError, match=r"task_ids must be a 1-D array of ids in 0\.\.1"):
        ARCGenSource(families="flip", tasks_per_family=2).sample_pairs(
            np.random.default_rng(0), np.array([2])
        )


# ------------------------------------------------------------------------- degenerate examples
def degenerate(inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Rows whose output equals its input: nothing to do, so no puzzle (re-arc's filter)."""
    return np.all(inputs == outputs, axis=(1, 2))


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_no_family_poses_or_shows_a_degenerate_pair(name: str) -> None:
    # before the redraw, 4,000 draws held 38% degenerate denoise puzzles, 12% fill_enclosed
    batch = one_family(name, tasks_per_family=100).sample(np.random.default_rng(0), 4000)
    assert degenerate(batch.grid, batch.target).sum() == 0
    demo_in = np.stack([pair[0] for demos in batch.demos for pair in demos])
    demo_out = np.stack([pair[1] for demos in batch.demos for pair in demos])
    assert len(demo_in) == 3 * 4000 and degenerate(demo_in, demo_out).sum() == 0


@pytest.mark.parametrize("name", [name for name in FAMILY_NAMES if name != "translate"])
def test_smallest_grids_still_give_real_pairs(name: str) -> None:
    # 3x3 is the worst case: 95% of denoise and 18% of gravity inputs used to be left as they are
    source = one_family(name, tasks_per_family=100, min_size=3, max_size=3)
    inputs, outputs = source.sample_pairs(
        np.random.default_rng(1), np.arange(1000) % source.num_tasks
    )
    assert degenerate(inputs, outputs).sum() == 0


def test_task_that_is_always_the_identity_is_refused() -> None:
    # a cyclic shift by 3 rows on 3-row grids changes nothing
    with pytest.raises(
        ValueError,
        match=r"family 'translate': task_id \d+ \(.*'dy': -?3.*'mode': 'wrap'.*\) maps "
        r"every 3x3 input to itself.*leave 'translate' out of families",
    ):
        one_family("translate", tasks_per_family=100, min_size=3, max_size=3)
    one_family("translate", tasks_per_family=100, min_size=3, max_size=4)  # 4-row grids move


def test_colour_map_style_always_meets_a_moved_colour() -> None:
    # a permutation fixing black and the whole palette would leave every input as it is
    family = FAMILIES["colour_map"]
    swap_8_9 = {"mapping": np.tile(np.r_[np.arange(8), 9, 8], (300, 1))}  # only 8 and 9 move
    drawn = TaskFamily.draw_styles(family, np.random.default_rng(0), swap_8_9)
    fixed = family.draw_styles(np.random.default_rng(0), swap_8_9)
    met = np.isin(drawn["palette"], [8, 9]).any(axis=1)
    assert met.any() and not met.all()
    assert np.isin(fixed["palette"], [8, 9]).any(axis=1).all()
    np.testing.assert_array_equal(fixed["palette"][met], drawn["palette"][met])  # kept as drawn
    assert np.all(
        np.sort(fixed["palette"], axis=1)[:, 1:] != np.sort(fixed["palette"], axis=1)[:, :-1]
    )
    assert np.all(fixed["palette"] != 0)


def test_a_task_that_never_changes_its_input_fails_with_its_family(monkeypatch) -> None:
    source = one_family("flip")
    monkeypatch.setattr(FAMILIES["flip"], "transform", lambda batch, grids, h, w: grids)
    with pytest.raises(ValueError, match=r"family 'flip' task \d .*equal to its input in 1000"):
        source.sample(np.random.default_rng(0), 2)


@pytest.mark.parametrize("name", ["denoise", "fill_enclosed"])
def test_do_nothing_agent_solves_no_episode(name: str) -> None:
    # halting at once on the initial draft (the input) used to solve 192/500 denoise episodes
    env = ARCGenVectorEnv(num_envs=50, families=[name], min_size=6, max_size=6)
    assert do_nothing_solves(env) == 0
