"""What the memory bank does in a trained run: its final accuracy per task with each of the
bank's two uses switched off (the issue's ablation).

For each run directory (a finished ``strategy=memory`` or ``memory_replay`` run), the run is
rebuilt from its ``.hydra/config.yaml``, its last checkpoint restored, and every task evaluated
on the run's own held-out puzzles four times:

- ``accuracy_on``: as the run evaluates (the read in every cycle, local adaptation on the
  retrieved stored puzzles when ``strategy.adapt_steps > 0``);
- ``accuracy_gate0``: the read gate forced to zero (the reader's output multiplied by zero by a
  forward hook, so the EMA weights are used either way and the gate is zero whichever copy of it
  is swapped in; also during the adaptation);
- ``accuracy_no_adaptation``: the read on, no local adaptation (``adapt_steps = 0``);
- ``accuracy_neither``: both off: the trained weights alone.

Prints one JSON line per run::

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
    strategy = run.strategy
    steps = getattr(strategy, "adapt_steps", 0)

    def accuracies(gate_zero: bool, adapt: bool) -> list[float]:
        strategy.adapt_steps = steps if adapt else 0
        handle = (
            reader.register_forward_hook(lambda module, inputs, output: output * 0)
            if gate_zero
            else None
        )
        try:
            return [run.evaluate(run.agent, j).accuracy for j in tasks]
        finally:
            strategy.adapt_steps = steps
            if handle is not None:
                handle.remove()

    on, off = accuracies(False, True), accuracies(True, True)
    no_adaptation, neither = accuracies(False, False), accuracies(True, False)
    return {
        "run": str(run_dir),
        "seed": run.seed,
        "tasks": [t.name for t in run.tasks],
        "adapt_steps": steps,
        "accuracy_on": on,
        "accuracy_gate0": off,
        "drop": [a - b for a, b in zip(on, off)],
        "accuracy_no_adaptation": no_adaptation,
        "drop_no_adaptation": [a - b for a, b in zip(on, no_adaptation)],
        "accuracy_neither": neither,
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
