"""What the memory bank does in a trained run: its final accuracy per task with the memory read on
and with the read gate forced to zero (the issue's ablation).

For each run directory (a finished ``strategy=memory`` or ``memory_replay`` run), the run is
rebuilt from its ``.hydra/config.yaml``, its last checkpoint restored, and every task evaluated
on the run's own held-out puzzles twice: as trained, and with the memory reader's output
multiplied by zero (a forward hook on the reader, so the EMA weights evaluated are used either
way and the gate is zero whichever copy of it is swapped in). Prints one JSON line per run::

    python benchmarks/memory_ablation.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ablate(run_dir: Path) -> dict:
    """``{"run", "tasks", "accuracy_on", "accuracy_gate0", "drop"}`` of one finished run."""
    from omegaconf import OmegaConf

    from trmgym.config import build_run

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    with_console = OmegaConf.merge(cfg, {"console": False})
    run = build_run(with_console, run_dir)
    progress = run.load_checkpoint()
    if progress is None or progress["task"] < len(run.tasks):
        raise SystemExit(f"{run_dir}: not a finished run (no final checkpoint)")
    reader = run.agent.memory_reader
    if reader is None:
        raise SystemExit(f"{run_dir}: the run's agent has no memory (agent.memory is null)")
    tasks = range(len(run.tasks))
    on = [run.evaluate(run.agent, j).accuracy for j in tasks]
    handle = reader.register_forward_hook(lambda module, inputs, output: output * 0)
    try:
        off = [run.evaluate(run.agent, j).accuracy for j in tasks]
    finally:
        handle.remove()
    return {
        "run": str(run_dir),
        "seed": run.seed,
        "tasks": [t.name for t in run.tasks],
        "accuracy_on": on,
        "accuracy_gate0": off,
        "drop": [a - b for a, b in zip(on, off)],
        "saved_final_row": progress["accuracy_matrix"][-1],
        "bank_slots_used": len(reader.memory),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished memory run directories")
    for run_dir in parser.parse_args(argv).runs:
        print(json.dumps(ablate(run_dir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
