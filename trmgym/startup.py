"""What ``trmgym run`` and ``trmgym demo`` check before anything runs or is written.

Hydra composes the configuration only once it has created the run directory, and it reports a
bad override as a multi-line message. :func:`check_command_line` composes the same configuration
first (Hydra's compose API, every value of a sweep), so a wrong command is refused in one line
naming the key and the allowed values, with exit status 2, before any directory exists:

====================================  =========================================================
command line                          refused with
====================================  =========================================================
``seed=abc``                          ``seed must be an int, got 'abc'``
``env=mazee``                         ``env=mazee: no such option; allowed: arc, arcgen, ...``
``run.batch_sise=8``                  ``run.batch_sise: no such key; allowed keys of run: ...``
``env=maze`` with a sequence          ``env=maze is not used: experiment quickstart trains the
                                      sequence ...`` (an override that would do nothing)
====================================  =========================================================

Overrides that a run legitimately ignores (``agent.dqn.*`` under ``agent.halting=bce``, which a
sweep over both halting modes needs) are warnings instead (:func:`unused_overrides`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = [
    "UsageError",
    "check_command_line",
    "describe_error",
    "parse_command_line",
    "unused_overrides",
]

#: Hydra flags whose command prints something and runs nothing (no check needed beyond Hydra's)
_INFO_FLAGS = ("help", "hydra_help", "shell_completion", "info")
#: a composition failing on a bad scalar (OmegaConf's ValidationError)
_CONVERT = re.compile(
    r"Value '(?P<value>.*)' of type '\w+' could not be converted to (?P<type>\w+)"
)
_TYPE_NAMES = {"Integer": "an int", "Float": "a number", "Boolean": "true or false"}


class UsageError(ValueError):
    """A command line that cannot run: the message is one line naming the key."""


# --------------------------------------------------------------------------- the command line
def parse_command_line(argv: list[str]) -> tuple[Namespace, list[str]]:
    """Hydra's arguments of ``argv``, and ``argv`` with its flags before its overrides.

    Hydra's parser takes flags only before the overrides (``trmgym run seed=1 --config-dir X``
    fails with "unrecognized arguments"); here flags and overrides may come in any order.
    """
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    args = parser.parse_intermixed_args(argv)
    flags: list[str] = []
    for action in parser._actions:  # noqa: SLF001 - Hydra's own parser, rebuilt in its order
        if not action.option_strings or action.dest == "version":
            continue
        value = getattr(args, action.dest)
        if action.nargs == 0:
            flags += [action.option_strings[0]] if value else []
        elif value is not None:
            flags += [action.option_strings[0], str(value)]
    return args, [*flags, *args.overrides]


def multirun_overrides(args: Namespace, config_dir: Path) -> list[str]:
    """``args.overrides`` for Hydra's multirun, with ``key=value`` written ``++key=value`` where
    ``key`` lies under a swept config group and the sweep's first configuration lacks it.

    Hydra composes a sweep's first configuration without the swept group's options (Hydra
    issues #283 and #2888), so ``curriculum=ramp,uniform curriculum.levels=...`` on an
    experiment without a curriculum fails there with "Key 'levels' is not in struct" although
    every job composes. ``++`` sets the key in each job just as the plain override does: every
    job was composed with the plain override first (:func:`check_command_line`), so a key some
    job lacks is refused before the sweep starts, never added. Overrides Hydra takes as they are
    stay as typed, so a sweep's job directories (named by its overrides) keep their names.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    overrides = list(args.overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - Hydra reports it itself
        return overrides
    extra = []
    if args.config_dir is not None:
        extra = [f"hydra.searchpath=[file://{Path(args.config_dir).resolve()}]"]
    absent = object()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir), version_base="1.3", job_name="cli"):
            swept = {
                o.key_or_group
                for o in parsed
                if o.is_sweep_override() and _group_options(o.key_or_group)
            }
            under = [
                k
                for k, o in enumerate(parsed)
                if o.type == OverrideType.CHANGE
                and not o.is_sweep_override()
                and o.key_or_group.split(".", 1)[0] in swept
                and not _group_options(o.key_or_group)
            ]
            if not under:
                return overrides
            # the sweep's first configuration as Hydra composes it: without the swept values
            fixed = [
                o.input_line
                for k, o in enumerate(parsed)
                if k not in under and not o.is_sweep_override()
            ]
            try:
                master = compose(args.config_name or "config", overrides=[*extra, *fixed])
            except Exception:  # noqa: BLE001 - then Hydra's own composition decides
                return overrides
            return [
                f"++{o.input_line}"
                if k in under and OmegaConf.select(master, o.key_or_group, default=absent) is absent
                else o.input_line
                for k, o in enumerate(parsed)
            ]
    finally:
        GlobalHydra.instance().clear()


def _variants(overrides: list[str]) -> Iterator[list[str]]:
    """The override lists to check for one command line: itself, or for a sweep every value of
    every swept key (the other keys at their first value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [None] for o in parsed]

    def line(o: Any, value: str | None) -> str:
        if value is None:
            return o.input_line
        return f"{o.get_key_element()}={value}"

    first = [line(o, v[0]) for o, v in zip(parsed, values)]
    yield first
    for k, (o, vals) in enumerate(zip(parsed, values)):
        for value in vals[1:]:
            yield [*first[:k], line(o, value), *first[k + 1 :]]


def check_command_line(command: str, args: Namespace, config_dir: Path) -> DictConfig | None:
    """Compose ``command``'s configuration for ``args`` (every sweep value) and refuse it in one
    line when Hydra or the checks below would; warn about overrides a run ignores.

    Returns the configuration of the first (or only) job, or None when ``args`` only asks Hydra
    for help or information.

    Raises:
        UsageError: a bad override (unknown key or option, wrong type), or one that does nothing
            for the chosen experiment (:func:`unused_overrides`).
    """
    if any(getattr(args, flag, None) for flag in _INFO_FLAGS):
        return None
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import trmgym.config  # noqa: F401  (the schemas the YAML groups build on)

    extra = []
    if args.config_dir is not None:
        folder = Path(args.config_dir).resolve()
        if not folder.is_dir():
            raise UsageError(f"--config-dir {args.config_dir}: no such directory")
        extra = [f"hydra.searchpath=[file://{folder}]"]
    name = args.config_name or "config"
    if args.multirun and args.cfg:
        raise UsageError("--cfg prints one configuration: drop -m (--multirun) to see a job's")
    first = None
    try:
        variants = list(_variants(list(args.overrides)))
    except Exception as error:  # noqa: BLE001 - Hydra's parse errors have no common base
        raise UsageError(describe_error(error)) from None
    if not args.multirun and len(variants) > 1:
        swept = [o for o in args.overrides if "," in o.split("=", 1)[-1] or "range(" in o]
        raise UsageError(
            f"{' '.join(swept)} sweeps over values: add -m (--multirun) to run one job per value"
        )
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir), version_base="1.3", job_name="cli"):
            for overrides in variants:
                try:
                    cfg = compose(name, overrides=[*extra, *overrides], return_hydra_config=True)
                except Exception as error:  # noqa: BLE001 - reworded below
                    raise UsageError(describe_error(error, overrides)) from None
                # --cfg only prints: what a run would refuse is a warning there
                unused_overrides(
                    cfg, overrides, command, strict=not args.cfg, sweep=bool(args.multirun)
                )
                if command == "run" and not args.cfg:
                    check_ranges(cfg, overrides)
                    check_output_dir(cfg, "hydra.sweep.dir" if args.multirun else "hydra.run.dir")
                first = cfg if first is None else first
    finally:
        GlobalHydra.instance().clear()
    return first


def check_output_dir(cfg: DictConfig, key: str) -> None:
    """Refuse a run (or sweep) directory that cannot be made: an existing file, or below one,
    or below a folder this process may not write to.

    Raises:
        UsageError: naming ``key`` and the path.
    """
    try:
        folder = Path(str(OmegaConf.select(cfg, key, throw_on_missing=True)))
    except Exception:  # noqa: BLE001 - an interpolation only the running app resolves
        return
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{key}={folder}: that path is a file, not a folder")
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None or existing == folder:
        return
    if not existing.is_dir():
        raise UsageError(f"{key}={folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{key}={folder}: cannot create it in {existing} (not writable)")


def _non_finite(value: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """``(key, value)`` of every NaN or infinite float in a config container (``hydra`` left
    out): no trmgym setting takes one, and NaN passes every ``value < 0`` range check."""
    if isinstance(value, float) and not math.isfinite(value):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            if not key and name == "hydra":
                continue
            yield from _non_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _non_finite(item, f"{key}[{k}]")


def check_ranges(cfg: DictConfig, overrides: list[str]) -> None:
    """The range checks of the ``run`` and ``agent`` schemas, the sequence's task entries (what
    :func:`trmgym.config.build_run` checks first) and ``curriculum_comparison``, for one job of
    a command line, so that every value of a sweep is checked before its first job starts. A
    strategy's arguments and env options are checked when each job builds its run.

    Raises:
        UsageError: naming the key (and the job's overrides in a sweep).
    """
    from trmgym.config import build_tasks
    from trmgym.experiment import MAX_SEED

    seed = cfg.get("seed")
    agent = OmegaConf.select(cfg, "hydra.runtime.choices.agent", default=None)
    if str(agent).startswith("sb3"):  # stable-baselines3 seeds numpy's legacy generator
        if isinstance(seed, int) and not 0 <= seed <= 2**32 - 1:
            raise UsageError(
                f"seed must be an int in [0, 2**32 - 1] with agent={agent}, got {seed}"
            )
    elif isinstance(seed, int) and not 0 <= seed <= MAX_SEED:
        raise UsageError(f"seed must be an int in [0, 2**63 - 1], got {seed}")
    bad = next(_non_finite(OmegaConf.to_container(cfg, resolve=False)), None)
    if bad is not None:
        key, value = bad
        raise UsageError(f"{key} must be a finite number, got {value}")
    try:
        OmegaConf.to_object(cfg.run)
        OmegaConf.to_object(cfg.agent)
        build_tasks(cfg)
        if cfg.get("curriculum_comparison") is not None:  # its keys, values and run kind
            from trmgym.comparison import check_comparison

            check_comparison(cfg)
    except (ValueError, TypeError) as error:
        raise UsageError(_first_line(str(error))) from None


# ------------------------------------------------------------------------------ error messages
def describe_error(error: BaseException, overrides: list[str] | None = None) -> str:
    """One line for a Hydra/OmegaConf composition error: the key and what is allowed."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    cause = error.__cause__ or error.__context__ or error
    if isinstance(error, MissingConfigException) and error.options is not None:
        group = _missing_group(str(error))
        chosen = _override_of(group, overrides) if group else None
        what = chosen or (f"group {group}" if group else "a config group option")
        # the schemas' own names (base_*) are what the YAML options build on, not options
        options = sorted(o for o in error.options if not o.startswith("base_"))
        return f"{what}: no such option; allowed: {', '.join(options)}"
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        found = _CONVERT.search(str(cause))
        if found:
            kind = _TYPE_NAMES.get(found["type"], f"a {found['type'].lower()}")
            return f"{cause.full_key} must be {kind}, got {found['value']!r}"
        return f"{cause.full_key}: {_first_line(str(cause))}"
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and getattr(
        cause, "full_key", None
    ):
        key = str(cause.full_key)
        parent, _, _ = key.rpartition(".")
        if overrides:  # a key below a null node: say which node to choose first
            culprit = _null_parent(overrides)
            if culprit is not None:
                return culprit
        allowed = _fields(getattr(cause, "object_type", None))
        where = f" of {parent}" if parent else ""
        hint = f"; allowed keys{where}: {', '.join(allowed)}" if allowed else ""
        if not allowed and key.split(".")[0] == "curriculum":
            hint = _curriculum_keys_hint(overrides or [])
        elif parent == "agent.model":  # overrides of the TRM's fields, added with +
            from trmgym.agents.trm import TRMConfig

            hint = (
                f"; agent.model holds overrides of the TRM's fields: give one with "
                f"+{key}=... if it is one ({', '.join(_fields(TRMConfig))})"
            )
        elif not allowed and parent and overrides:  # a plain YAML node (env): its own keys
            keys = _node_keys(parent, key, overrides)
            hint = f"; allowed keys{where}: {', '.join(keys)} (a new key takes a +)" if keys else ""
        baseline = (_override_of("agent", overrides or []) or "=").split("=", 1)[1] or None
        typed = any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides or ())
        if key.startswith("agent.") and baseline not in (None, "trm") and not typed:
            experiment = (_override_of("experiment", overrides or []) or "=quickstart").split(
                "=", 1
            )[1]
            hint += f" (experiment={experiment} sets {key}, {_owners(key)}; " + _baseline_hint(
                baseline, experiment
            )
        return f"{key}: no such key{hint}"
    if "Config group override must be a string or a list. Got NoneType" in str(error):
        nulled = [o.split("=", 1)[0] for o in overrides or () if o.endswith("=null")]
        key = nulled[0] if nulled else "a config group"
        return (
            f"{key}=null: a config group takes one of its options; leave {key} out for its "
            f"default, or drop the group's choice with ~{key}"
        )
    if overrides:  # e.g. a key below a null node (agent.memory.capacity with agent.memory null)
        culprit = _null_parent(overrides)
        if culprit is not None:
            return culprit
    return _first_line(str(error)) or type(error).__name__


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _missing_group(message: str) -> str | None:
    found = re.search(r"Could not find '([^']+)/[^'/]+'", message)
    return found[1] if found else None


def _override_of(key: str, overrides: list[str] | None) -> str | None:
    for line in overrides or []:
        if line.lstrip("+~").split("=", 1)[0] == key:
            return line.lstrip("+~")
    return None


def _curriculum_keys_hint(overrides: list[str]) -> str:
    """``; allowed keys of curriculum=<choice>: ...`` for a key the chosen curriculum's file does
    not have: the file's keys, then its class's other arguments (which take a ``+``)."""
    import inspect
    from importlib import resources

    from hydra.utils import get_class

    generic = (
        "; allowed keys: those of the chosen curriculum's file (configs/curriculum/, "
        "`trmgym run --cfg job` shows them); a class argument not in it takes a +"
    )
    configs = resources.files("trmgym.configs")
    chosen = _override_of("curriculum", overrides)
    choice = chosen.split("=", 1)[1] if chosen and "=" in chosen else None
    if not choice:  # the experiment's own choice (its defaults list)
        experiment = (_override_of("experiment", overrides) or "=quickstart").split("=", 1)[1]
        path = configs / "experiment" / f"{experiment}.yaml"
        if not path.is_file():
            return generic
        for entry in OmegaConf.load(str(path)).get("defaults") or []:
            if isinstance(entry, DictConfig) and "override /curriculum" in entry:
                choice = entry["override /curriculum"]
    path = configs / "curriculum" / f"{choice}.yaml" if choice else None
    if path is None or not path.is_file():
        return generic
    node = OmegaConf.load(str(path))
    in_file = [str(k) for k in node if k not in ("_target_", "defaults")]
    try:
        signature = inspect.signature(get_class(str(node["_target_"])).__init__)
    except Exception:  # a class that cannot be imported: the file's keys only
        signature = None
    more = [
        name
        for name, param in (signature.parameters.items() if signature else [])
        if name != "self"
        and name not in in_file
        and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
    ]
    more.append("name")  # the curriculum's name in results.json (config.build_curriculum)
    hint = f"; allowed keys of curriculum={choice}: {', '.join(in_file)}"
    if more:
        hint += f"; its other arguments take a +: {', '.join('+curriculum.' + m for m in more)}"
    return hint


def _fields(schema: Any) -> list[str]:
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return [f.name for f in dataclasses.fields(schema)]
    return []


def _group_options(group: str) -> list[str]:
    """The options of config group ``group`` (empty when it is not one); needs Hydra set up."""
    from hydra.core.global_hydra import GlobalHydra

    try:
        options = GlobalHydra.instance().config_loader().get_group_options(group)
    except Exception:  # noqa: BLE001 - no such group, or Hydra not set up
        return []
    return sorted(o for o in options if not o.startswith("base_"))  # schemas, not options


def _node_keys(parent: str, key: str, overrides: list[str]) -> list[str]:
    """The keys of node ``parent`` in the configuration composed without the override(s) that
    set ``key`` (empty when that fails or it is not a mapping); needs Hydra set up."""
    from hydra import compose

    rest = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key]
    try:
        node = OmegaConf.select(compose("config", overrides=rest), parent, default=None)
    except Exception:  # noqa: BLE001 - another override is the problem
        return []
    return [str(k) for k in node] if isinstance(node, DictConfig) else []


def _owners(key: str) -> str:
    """Which agents have ``key`` (``agent.<field>``): "a key of the TRM agent", "a key of
    agent=sb3_ppo|sb3_maskable_ppo", ..."""
    from trmgym.agents.baseline_configs import BASELINE_AGENTS
    from trmgym.agents.trm_agent import TRMAgentConfig

    field = key.split(".")[1]
    names = ["the TRM agent"] if field in TRMAgentConfig.__dataclass_fields__ else []
    baselines = [n for n, cls in BASELINE_AGENTS.items() if field in cls.__dataclass_fields__]
    if baselines:
        names.append("agent=" + "|".join(baselines))
    return "a key of " + " and ".join(names) if names else "a key of no agent"


#: experiments a baseline agent can run, and how to run the setting of one it cannot
BASELINE_EXPERIMENTS = (
    "experiment=single_task env.action_mode=edit|walk",
    "experiment=curiosity_maze",
    "experiment=continual sequence=sudoku-edit",
)
#: an experiment's setting as a single_task command, for an agent that cannot take its keys
SINGLE_TASK_OF = {
    "curiosity_maze": "experiment=single_task env=maze env.size=9 env.action_mode=walk "
    "env.reward=sparse run.train_steps=1500 run.batch_size=64 run.eval_episodes=256",
}


def _baseline_hint(agent: str, experiment: str) -> str:
    """Where ``agent=<agent>`` runs, given that ``experiment`` sets a key it does not have."""
    if experiment in SINGLE_TASK_OF:
        return f"with agent={agent} run its setting as {SINGLE_TASK_OF[experiment]})"
    others = [e for e in BASELINE_EXPERIMENTS if not e.startswith(f"experiment={experiment}")]
    return f"with agent={agent} use {', '.join(others[:-1])} or {others[-1]})"


def _null_parent(overrides: list[str]) -> str | None:
    """``a.b.c=v`` where ``a.b`` is null in the configuration without it: say so."""
    from hydra import compose

    for line in overrides:
        key = line.lstrip("+~").split("=", 1)[0]
        if "." not in key or "/" in key:
            continue
        rest = [o for o in overrides if o is not line]
        try:
            cfg = compose("config", overrides=rest)
        except Exception:  # noqa: BLE001 - another override is the problem
            continue
        parts = key.split(".")
        for depth in range(1, len(parts)):
            node = OmegaConf.select(cfg, ".".join(parts[:depth]), default="<absent>")
            if node is None:
                parent = ".".join(parts[:depth])
                group = parent.replace(".", "/")
                options = _group_options(group)
                if options:  # a config group left null: choose an option, then set its keys
                    return (
                        f"{key}: {parent} is null in this configuration; choose one first "
                        f"({group}={'|'.join(options)}), then set {key}"
                    )
                leaf = ".".join(parts[depth:])
                return (  # a plain node (curriculum_comparison): give it whole, or add the key
                    f"{key}: {parent} is null in this configuration; give it whole "
                    f"({parent}={{{leaf}: ...}}) or add the key with +{key}=..."
                )
    return None


# ----------------------------------------------------------------------------- unused overrides
def _keys(overrides: list[str]) -> list[tuple[str, str]]:
    """``(key, override)`` of each override, ``+``/``~`` stripped, groups with ``/`` as ``.``."""
    found = []
    for line in overrides:
        key = line.lstrip("+~").split("=", 1)[0]
        found.append((key.replace("/", "."), line))
    return found


def _under(key: str, node: str) -> bool:
    return key == node or key.startswith(node + ".")


def unused_overrides(
    cfg: DictConfig,
    overrides: list[str],
    command: str = "run",
    *,
    strict: bool = True,
    sweep: bool = False,
) -> None:
    """Refuse overrides that the composed run ignores; warn about ignorable ones.

    Errors: ``env`` / ``env.*`` when the experiment trains a sequence; ``run.train_steps`` when
    every task of the sequence has its own ``train_steps`` (use ``run.budget_scale``); a key
    added with ``+`` that no part of trmgym reads (at the top level, or under a node with a
    schema: ``+run.budget_scal``, ``+agent.model.bogus`` against ``TRMConfig``). Warnings:
    ``run.train_steps`` that only some tasks use; ``agent.dqn.*`` under ``agent.halting=bce``;
    ``demo.*`` in ``trmgym run``; ``run``/``strategy``/``agent``/``sequence``/``plugins`` in
    ``trmgym demo`` (which shows the ``env`` only).

    Raises:
        UsageError: naming the override and what to do instead (a warning when not ``strict``).
    """
    try:
        _check_unused(cfg, overrides, command, sweep)
    except UsageError as error:
        if strict:
            raise
        warnings.warn(str(error), UserWarning, stacklevel=2)


def _check_unused(cfg: DictConfig, overrides: list[str], command: str, sweep: bool = False) -> None:
    from trmgym.config import TrmgymConfig

    experiment = OmegaConf.select(cfg, "hydra.runtime.choices.experiment", default=None)
    known = {f.name for f in dataclasses.fields(TrmgymConfig)} | {"hydra", "experiment"}
    keys = _keys(overrides)
    for key, line in keys:
        root = key.split(".", 1)[0]
        if root not in known:
            raise UsageError(
                f"{line}: trmgym has no setting {root!r}; top-level keys: "
                f"{', '.join(sorted(known - {'hydra', 'experiment'}))}"
            )
    for key, line in keys:
        if not line.startswith("+") or "." not in key:
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None)
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if parent == "agent.model":
            from trmgym.agents.trm import TRMConfig

            schema = TRMConfig
        allowed = _fields(schema)
        if allowed and leaf not in allowed:
            raise UsageError(
                f"{line}: {parent} has no key {leaf!r}; allowed keys of {parent}: "
                f"{', '.join(allowed)}"
            )
    if command == "demo":
        ignored = [line for key, line in keys if key.split(".", 1)[0] in _DEMO_IGNORES]
        if ignored:
            warnings.warn(
                f"trmgym demo shows the env only; ignored: {' '.join(ignored)}",
                UserWarning,
                stacklevel=2,
            )
        return
    sequence = cfg.get("sequence")
    if command == "run":
        try:
            _check_fewshot_overrides(cfg, keys, experiment)
        except UsageError as error:
            if not sweep:
                raise
            # a sweep over experiments (or eval.fewshot) gives every job the other's values
            warnings.warn(f"{' '.join(overrides)}: {error}", UserWarning, stacklevel=2)
    if sequence is not None:
        name = sequence.get("name", "?")
        chose = next((line for key, line in keys if key == "sequence"), None)
        for key, line in keys:
            if _under(key, "env"):
                if chose is not None:
                    raise UsageError(
                        f"{line} is not used: {chose} trains that sequence, not env; give "
                        f"either a sequence or {line} (with experiment=single_task)"
                    )
                raise UsageError(
                    f"{line} is not used: experiment {experiment} trains the sequence {name!r} "
                    "(sequence.tasks), not env; for a single task give "
                    f"experiment=single_task {line}"
                )
        own = [
            t.get("name", f"task {k}")
            for k, t in enumerate(sequence.get("tasks") or [])
            if t.get("train_steps") is not None
        ]
        tasks = len(sequence.get("tasks") or [])
        for key, line in keys:
            if key != "run.train_steps":
                continue
            if own and len(own) == tasks:
                raise UsageError(
                    f"{line} is not used: every task of the sequence {name!r} has its own "
                    "train_steps; scale every budget with run.budget_scale (e.g. "
                    "run.budget_scale=0.1)"
                )
            if own:
                warnings.warn(
                    f"{line} sets the budget of the tasks without their own train_steps only; "
                    f"{', '.join(own)} keep theirs (run.budget_scale scales every budget)",
                    UserWarning,
                    stacklevel=2,
                )
    halting = OmegaConf.select(cfg, "agent.halting", default=None)
    dqn = [line for key, line in keys if _under(key, "agent.dqn")]
    if dqn and halting != "dqn":
        warnings.warn(
            f"{' '.join(dqn)}: not used with agent.halting={halting} (the DQN halting head only)",
            UserWarning,
            stacklevel=2,
        )
    demo = [line for key, line in keys if _under(key, "demo")]
    if demo:
        warnings.warn(f"{' '.join(demo)}: used by trmgym demo only", UserWarning, stacklevel=2)


#: what a few-shot experiment (``fewshot`` set, ``sequence`` null) does not read
_FEWSHOT_IGNORES = (
    "env",
    "strategy",
    "curriculum",
    "curriculum_comparison",
    "curiosity",
    "plugins",
    "eval",
)


def _check_fewshot_overrides(cfg: DictConfig, keys: list[tuple[str, str]], experiment: Any) -> None:
    """A few-shot experiment reads ``fewshot``, ``meta``, ``agent``, ``seed``, ``device``,
    ``console`` and ``run.threads`` only; a ``fewshot`` choice on a continual run is read only
    with ``eval.fewshot=true``. Anything else given is refused, naming it.

    Raises:
        UsageError: an override the run would ignore, or a sequence that would turn a few-shot
            experiment into a continual run.
    """
    if cfg.get("fewshot") is None:
        return
    chose = [line for key, line in keys if key == "sequence"]
    if cfg.get("sequence") is not None:
        if OmegaConf.select(cfg, "eval.fewshot", default=False):
            return
        given = [line for key, line in keys if key == "fewshot" or _under(key, "fewshot")]
        if chose and experiment is not None and str(experiment).startswith("fewshot"):
            raise UsageError(
                f"{chose[0]} turns experiment={experiment} into a continual run, which reads "
                "neither fewshot.* nor meta.*; drop it, or add eval.fewshot=true to a continual "
                "experiment to measure few-shot transfer after each task"
            )
        if given:
            raise UsageError(
                f"{' '.join(given)} is not used: a continual run reads the fewshot node only "
                "with eval.fewshot=true (few-shot transfer after each task); add it, or use "
                "experiment=fewshot_arcgen"
            )
        return
    ignored = [
        line
        for key, line in keys
        if key.split(".", 1)[0] in _FEWSHOT_IGNORES
        or (_under(key, "run") and key != "run.threads")
        or _under(key, "agent.halting")  # the few-shot methods train the TRM, not its halting
        or _under(key, "agent.dqn")
    ]
    if ignored:
        raise UsageError(
            f"{' '.join(ignored)} is not used: experiment={experiment} is a few-shot experiment, "
            "which reads fewshot.*, meta.*, agent.* (not its halting or dqn), seed, device, "
            "console and run.threads only (its budgets are fewshot.* and meta.*)"
        )


_DEMO_IGNORES = (
    "run",
    "strategy",
    "agent",
    "sequence",
    "plugins",
    "curriculum",
    "curriculum_comparison",
)
