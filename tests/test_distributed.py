"""Data-parallel training (trmgym.distributed) with 2 gloo processes on the CPU.

The processes are started with ``torch.multiprocessing.spawn`` and meet through a file store in
``tmp_path`` (no network port); each writes what it saw to a file that the test compares.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trmgym import checkpoint
from trmgym.distributed import World, local_batch, rank_state_for, shard
from trmgym.experiment import ContinualRun
from trmgym.runner import evaluate

from .tiny_run import AGENT, SETTINGS, TASKS

pytestmark = pytest.mark.slow

ROWS, STEPS = 8, 3


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    grid = rng.integers(2, 12, size=(ROWS, 4, 4))
    return grid, (grid + 1) % 12


def _learn(agent, rows: np.ndarray) -> list[float]:  # noqa: ANN001
    """``STEPS`` deep-supervision steps on ``rows`` of the fixed batch; the losses seen."""
    grid, target = _batch()
    obs = {"grid": grid[rows], "answer": grid[rows], "task_id": np.zeros(len(rows), np.int64)}
    carry = agent.initial_carry(len(rows))
    losses = []
    for _ in range(STEPS):
        _, carry = agent.act(obs, carry, learn=True)
        metrics = agent.learn(target[rows], np.zeros(len(rows)), np.zeros(len(rows), bool))
        losses.append(metrics["train/loss"])
    return losses


def _agent():  # noqa: ANN202
    from trmgym.agents.trm_agent import TRMAgent, TRMAgentConfig

    config = TRMAgentConfig(
        size="tiny", halting="bce", model={"hidden_size": 32, "num_heads": 2}, warmup_steps=0
    )
    return TRMAgent(config, canvas=(4, 4), max_steps=8, seed=0, device="cpu")


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _worker(rank: int, world_size: int, store: str, out: str, job: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        result: dict = {}
        if job == "update":
            agent = _agent()
            losses = _learn(agent, shard(ROWS, World(rank, world_size)))
            mean = torch.tensor(losses, dtype=torch.float64)
            dist.all_reduce(mean)
            result = {"losses": (mean / world_size).tolist(), "params": _flat(agent.model).tolist()}
        elif job == "evaluate":
            agent = _agent()
            e = evaluate(
                agent, TASKS[0], episodes=10, seed=3, max_steps=3, canvas=(4, 4),
                world=World(rank, world_size),
            )  # fmt: skip
            result = {"evaluation": [e.accuracy, e.cell_accuracy, e.reasoning_steps]}
        elif job == "run":
            run = ContinualRun(
                TASKS, AGENT, {"name": "replay", "memory_size": 32}, SETTINGS, out, console=False
            )
            results = run.run()
            result = {
                "matrix": results["accuracy_matrix"],
                "params": _flat(run.agent.model).tolist(),
                "q": _flat(run.agent.dqn.q).tolist(),
            }
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
        # every rank done before any tears down: a rank whose peer already closed its gloo
        # connections can abort ("terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, job: str, world_size: int = 2) -> list[dict]:
    out = tmp_path / job
    out.mkdir()
    mp.spawn(
        _worker, args=(world_size, str(tmp_path / f"{job}.store"), str(out), job), nprocs=world_size
    )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world_size)]


def test_two_ranks_take_the_update_of_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    ranks = _spawn(tmp_path, "update")
    single = _agent()
    losses = _learn(single, np.arange(ROWS))
    np.testing.assert_allclose(ranks[0]["losses"], losses, rtol=0, atol=1e-5)
    for r in ranks:  # every rank holds the weights one process reaches on the whole batch
        np.testing.assert_allclose(r["params"], _flat(single.model).numpy(), rtol=0, atol=1e-5)
    # not trivially equal: the steps moved the weights
    assert not np.allclose(ranks[0]["params"], _flat(_agent().model).numpy(), atol=1e-4)


def test_sharded_evaluation_equals_one_process(tmp_path: Path) -> None:
    ranks = _spawn(tmp_path, "evaluate")
    e = evaluate(_agent(), TASKS[0], episodes=10, seed=3, max_steps=3, canvas=(4, 4))
    assert ranks[0]["evaluation"] == ranks[1]["evaluation"]
    assert ranks[0]["evaluation"] == pytest.approx([e.accuracy, e.cell_accuracy, e.reasoning_steps])


def test_data_parallel_run_writes_once_and_resumes_on_one_process(tmp_path: Path) -> None:
    ranks = _spawn(tmp_path, "run")
    run_dir = tmp_path / "run"
    assert ranks[0]["matrix"] == ranks[1]["matrix"]  # evaluations are summed over the ranks
    assert ranks[0]["params"] == ranks[1]["params"]  # the averaged gradients keep ranks equal
    assert ranks[0]["q"] == ranks[1]["q"]  # the DQN halting head too
    results = json.loads((run_dir / "results.json").read_text())
    assert results["world_size"] == 2 and results["accuracy_matrix"] == ranks[0]["matrix"]
    saved = checkpoint.load_latest(run_dir / "checkpoints")
    assert saved["world_size"] == 2 and len(saved["ranks"]) == 1
    # resume on one process from the checkpoint before the last: it trains the last chunk again
    checkpoints = run_dir / "checkpoints"
    shutil.move(checkpoints / "previous.pt", checkpoints / "last.pt")
    (run_dir / "results.json").unlink()
    with pytest.warns(UserWarning, match="checkpointed on 2 processes on 1"):
        resumed = ContinualRun(
            TASKS, AGENT, {"name": "replay", "memory_size": 32}, SETTINGS, run_dir, console=False
        ).run()
    assert resumed["world_size"] == 1
    assert [start["world_size"] for start in resumed["starts"]] == [2, 1]
    assert np.array(resumed["accuracy_matrix"]).shape == (2, 2)
    assert (run_dir / "results.json").is_file()


def test_shards_cover_every_index_once() -> None:
    for n in (0, 1, 7, 10):
        for size in (1, 2, 3):
            parts = [shard(n, World(r, size)) for r in range(size)]
            assert np.concatenate(parts).tolist() == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_the_global_batch_must_split_evenly() -> None:
    assert local_batch(8, World(0, 2)) == 4
    with pytest.raises(ValueError, match="run.batch_size=9 must be a multiple of .* \\(2\\)"):
        local_batch(9, World(1, 2))


def test_a_rank_resumes_from_its_own_state_or_a_copy() -> None:
    states = ["s0", "s1"]
    assert rank_state_for(states, World(1, 2)) == ("s1", True)  # same world size: its own
    assert rank_state_for(states, World(2, 3)) == ("s0", False)  # a new rank: a copy
    with pytest.warns(UserWarning, match="ranks \\[1\\] are dropped"):
        assert rank_state_for(states, World(0, 1)) == ("s0", True)


def _torchrun_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """A rank set up as ``torchrun`` does (environment variables), joined by ``init_from_env``."""
    import os

    from trmgym import distributed

    torch.set_num_threads(1)
    os.environ.update(
        WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    w = distributed.init_from_env("cpu")
    total = distributed.sum_over_ranks([rank + 1])
    distributed.shutdown()
    after = dist.is_initialized()
    distributed.shutdown()  # a second call does nothing
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({"world": [w.rank, w.size], "total": float(total[0]), "after": after})
    )


def test_a_torchrun_rank_leaves_the_group_it_joined(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a free port on the loopback interface
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_torchrun_worker, args=(2, port, str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [[0, 2], [1, 2]]
    assert [r["total"] for r in ranks] == [3.0, 3.0]
    assert [r["after"] for r in ranks] == [False, False]


def test_shutdown_leaves_a_group_set_up_by_the_caller(tmp_path: Path) -> None:
    from trmgym import distributed

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        assert distributed.init_from_env("cpu") == distributed.World()
        distributed.shutdown()
        assert dist.is_initialized()  # not ours to destroy
    finally:
        dist.destroy_process_group()
