"""Every shipped config composes and builds, through the same function as `trmgym run` (no training).

``build_run`` is what ``trmgym run`` calls before ``run()``; these tests call it for every
experiment, sequence, env and strategy and check the objects it builds, that the YAML groups and
the Python defaults (schemas, presets) agree, and that bad values fail naming their key.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from trmgym.agents.baselines import BaselineAgentConfig
from trmgym.agents.memory_reader import MemoryConfig
from trmgym.agents.trm import TRMConfig
from trmgym.agents.trm_agent import TRMAgentConfig
from trmgym.cli import config_dir
from trmgym.config import STRATEGY_SCHEMAS, RunSettings, TrmgymConfig, build_run
from trmgym.curricula.sequence import TaskSequence
from trmgym.experiment import ContinualRun
from trmgym.plugins import EWC, Memory, MemoryReplay, Multitask, Plugin, Replay, Scratch, Strategy

SEQUENCES = sorted(p.stem for p in (config_dir() / "sequence").glob("*.yaml"))
ALL_EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
#: few-shot experiments run trmgym.meta.fewshot, not a ContinualRun (a `fewshot` node, no sequence)
FEWSHOT_EXPERIMENTS = [e for e in ALL_EXPERIMENTS if e.startswith("fewshot")]
EXPERIMENTS = [e for e in ALL_EXPERIMENTS if e not in FEWSHOT_EXPERIMENTS]
STRATEGIES = sorted(p.stem for p in (config_dir() / "strategy").glob("*.yaml"))
ENVS = sorted(p.stem for p in (config_dir() / "env").glob("*.yaml"))
#: strategy YAML values that differ from their schema on purpose (the reason is in the YAML)
ON_PURPOSE: dict[str, dict] = {}
#: sequences of Discrete (edit mode) tasks, which the TRM does not play: built with this agent
SEQUENCE_AGENT = {"sudoku-edit": "sb3_ppo"}


def composed(*overrides: str) -> DictConfig:
    """The config `trmgym run <overrides>` composes (with the Hydra config set, as in the app)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=["device=cpu", *overrides], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def built(tmp_path: Path, *overrides: str) -> tuple[DictConfig, ContinualRun]:
    cfg = composed(*overrides)
    job = build_run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # building writes nothing
    return cfg, job


def check_common(cfg: DictConfig, job: ContinualRun) -> None:
    """What every built run must show: the composed settings, agent and strategy, as objects."""
    assert isinstance(job.settings, RunSettings)
    assert dataclasses.asdict(job.settings) == OmegaConf.to_container(cfg.run, resolve=True)
    assert dataclasses.asdict(job.agent_config) == OmegaConf.to_container(cfg.agent)
    if isinstance(job.agent_config, BaselineAgentConfig):
        assert job.agent_name == cfg.agent.name
        return
    assert isinstance(job.agent_config, TRMAgentConfig)
    assert job.seed == cfg.seed and job.experiment == cfg.experiment_name
    assert job.strategy_config == OmegaConf.to_container(cfg.strategy, resolve=True)
    assert type(job.strategy) is get_class(cfg.strategy._target_)
    extra = [] if cfg.get("curriculum") is None else [job.plugins[-1]]
    assert list(job.plugins) == [job.strategy, *extra]
    model = job.agent.model_config
    assert (model.grid_height, model.grid_width) == job.canvas
    assert model.num_task_embeddings == (len(job.tasks) if cfg.run.task_labels else 0)


@pytest.mark.parametrize("experiment", FEWSHOT_EXPERIMENTS)
def test_fewshot_experiments_compose_into_their_schemas(experiment: str) -> None:
    from trmgym.fewshot_job import check_fewshot
    from trmgym.meta.settings import FewShotConfig, MetaConfig

    cfg = composed(f"experiment={experiment}")
    assert cfg.sequence is None and cfg.fewshot is not None
    fewshot, meta, agent = check_fewshot(cfg)
    # the YAML group holds no value of its own: the schema's defaults are the experiment's
    assert fewshot == FewShotConfig() and meta == MetaConfig()
    assert agent == TRMAgentConfig()


def test_the_default_is_the_quickstart(tmp_path: Path) -> None:
    cfg, job = built(tmp_path)
    assert cfg.sequence.name == "quickstart" and len(cfg.sequence.tasks) >= 3
    assert job.experiment == "quickstart"
    assert [t.name for t in job.tasks] == [t.name for t in cfg.sequence.tasks]
    assert job.agent.model_config.pos_encoding == "rowcol"  # the experiment's one model override


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_build(experiment: str, tmp_path: Path) -> None:
    cfg, job = built(tmp_path, f"experiment={experiment}")
    check_common(cfg, job)
    assert job.experiment == experiment
    if cfg.sequence is None:
        expected = {
            "curriculum_maze": "maze7",
            "curiosity_maze": "maze9",
            "curriculum_sudoku": "sudoku6x6",
        }.get(experiment, "sudoku4x4")
        assert [t.name for t in job.tasks] == [expected]
    else:
        assert [t.name for t in job.tasks] == [t.name for t in cfg.sequence.tasks]
    assert job.budgets == [t.get("train_steps") or cfg.run.train_steps for t in job_entries(cfg)]


def job_entries(cfg: DictConfig) -> list:
    return [cfg.env] if cfg.sequence is None else list(cfg.sequence.tasks)


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_sequences_build(sequence: str, tmp_path: Path) -> None:
    agent = [f"agent={SEQUENCE_AGENT[sequence]}"] if sequence in SEQUENCE_AGENT else []
    cfg, job = built(tmp_path, "experiment=continual", f"sequence={sequence}", *agent)
    check_common(cfg, job)
    expected = TaskSequence.from_config(OmegaConf.to_container(cfg.sequence, resolve=True))
    assert job.tasks == expected.tasks
    shapes = [task.native_shape() for task in job.tasks]
    assert job.canvas == (max(s[0] for s in shapes), max(s[1] for s in shapes))


@pytest.mark.parametrize("env", ENVS)
def test_envs_build(env: str, tmp_path: Path) -> None:
    cfg, job = built(tmp_path, "experiment=single_task", f"env={env}")
    check_common(cfg, job)
    (task,) = job.tasks
    assert task.env_id == cfg.env.id and task.name == cfg.env.name


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_build(strategy: str, tmp_path: Path) -> None:
    cfg, job = built(tmp_path, "experiment=smoke", f"strategy={strategy}")
    check_common(cfg, job)
    built_strategy, batch = job.strategy, cfg.run.batch_size
    assert built_strategy.name == strategy == job.strategy_config["name"]
    if strategy == "replay":
        assert isinstance(built_strategy, Replay)
        assert built_strategy.memory.capacity == 2000 and built_strategy.memory.task_quota
        assert built_strategy.replay_batch_size == round(0.5 * batch) and built_strategy.only_past
        assert built_strategy.memory.data["grid"].shape[1:] == job.canvas
    elif strategy == "multitask":
        assert isinstance(built_strategy, Multitask)
        assert built_strategy.replay_batch_size == batch
        assert built_strategy.sampler is job.sampler
    elif strategy == "ewc":
        assert isinstance(built_strategy, EWC)
        assert (built_strategy.ewc_lambda, built_strategy.gamma) == (1.0e8, 1.0)
        assert (built_strategy.fisher_batches, built_strategy.fisher_batch_size) == (8, 64)
    elif strategy == "scratch":
        assert isinstance(built_strategy, Scratch)
    elif strategy in ("memory", "memory_replay"):
        assert type(built_strategy) is (Memory if strategy == "memory" else MemoryReplay)
        assert built_strategy.write_every == "episode"
        # the strategy selects the agent's bank (agent/memory=bank) with the schema's defaults
        assert job.agent_config.memory == MemoryConfig()
        assert job.agent.memory_reader.memory.capacity == 4096
    else:
        assert type(built_strategy) is Strategy


# ------------------------------------------------------------------- YAML and Python agree
@pytest.mark.parametrize("size", ["tiny", "small", "paper"])
def test_each_size_builds_its_python_preset(size: str, tmp_path: Path) -> None:
    _, job = built(tmp_path, "experiment=smoke", f"agent.size={size}")
    height, width = job.canvas
    preset = getattr(TRMConfig, size)(
        seq_len=height * width,
        grid_height=height,
        grid_width=width,
        num_task_embeddings=len(job.tasks),
    )
    assert dataclasses.asdict(job.agent.model_config) == dataclasses.asdict(preset)
    if size == "paper":
        model = job.agent.model_config
        assert (model.hidden_size, model.num_heads, model.h_cycles, model.l_cycles) == (
            512,
            8,
            3,
            6,
        )


def test_tiny_is_what_trmgym_run_built_before_the_schemas(tmp_path: Path) -> None:
    """`trmgym run` results must not change: the YAML's former model overrides are the preset."""
    _, job = built(tmp_path, "experiment=smoke")
    model = job.agent.model_config
    assert (model.hidden_size, model.num_heads, model.expansion) == (64, 4, 4.0)
    assert (model.h_cycles, model.l_cycles, model.puzzle_emb_len) == (2, 2, 4)
    assert job.agent_config.dqn.buffer_size == 20_000


def test_the_composed_agent_is_the_python_default(tmp_path: Path) -> None:
    _, job = built(tmp_path, "experiment=smoke")
    assert job.agent_config == TRMAgentConfig()
    assert OmegaConf.to_object(composed("experiment=smoke").agent) == TRMAgentConfig()


@pytest.mark.parametrize(
    ("overrides", "memory"),
    [
        ([], None),
        (["agent/memory=none"], None),
        (["agent/memory=bank"], MemoryConfig()),
        (
            [
                "agent/memory=bank",
                "agent.memory.capacity=8192",
                "agent.memory.replacement=importance",
            ],
            MemoryConfig(capacity=8192, replacement="importance"),
        ),
    ],
)
def test_the_memory_group_builds_the_python_memory_config(overrides: list, memory) -> None:
    agent = OmegaConf.to_object(composed("experiment=smoke", *overrides).agent)
    assert agent == TRMAgentConfig(memory=memory)


def test_the_composed_run_settings_are_the_python_default() -> None:
    assert OmegaConf.to_object(composed("experiment=single_task").run) != RunSettings()
    assert OmegaConf.to_object(OmegaConf.structured(TrmgymConfig).run) == RunSettings()
    cfg = composed("experiment=quickstart")
    assert OmegaConf.to_container(cfg.demo) == {"episodes": 2, "cells_per_step": 0}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_yaml_holds_only_deliberate_values(strategy: str) -> None:
    node = OmegaConf.to_container(composed(f"strategy={strategy}").strategy)
    schema = dataclasses.asdict(STRATEGY_SCHEMAS[strategy]())
    differs = {k: v for k, v in node.items() if schema.get(k) != v}
    assert differs == ON_PURPOSE.get(strategy, {})
    assert set(node) == set(schema)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_yaml_holds_only_deliberate_values(experiment: str) -> None:
    raw = OmegaConf.load(config_dir() / "experiment" / f"{experiment}.yaml")
    defaults = dataclasses.asdict(RunSettings())
    repeated = {k: v for k, v in raw.get("run", {}).items() if defaults[k] == v}
    assert repeated == {}, f"experiment/{experiment}.yaml repeats run defaults {repeated}"
    preset = TRMConfig.tiny()
    model = raw.get("agent", {}).get("model", {})
    assert {k: v for k, v in model.items() if getattr(preset, k) == v} == {}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_schema_defaults_are_the_class_defaults(strategy: str) -> None:
    """`make_strategy({"name": ...})` (Python) and the schema (CLI) share their defaults."""
    schema = STRATEGY_SCHEMAS[strategy]()
    parameters = inspect.signature(get_class(schema._target_)).parameters
    arguments = {
        f.name: getattr(schema, f.name)
        for f in dataclasses.fields(schema)
        if f.name not in ("_target_", "_partial_", "name")
    }
    assert arguments == {name: parameters[name].default for name in arguments}
    assert get_class(schema._target_).name == schema.name == strategy


def test_a_saved_plain_config_builds_the_same_run(tmp_path: Path) -> None:
    cfg, job = built(tmp_path, "experiment=smoke", "strategy=replay", "seed=4")
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # like .hydra/config.yaml
    again = build_run(plain, tmp_path / "again")
    assert again.settings == job.settings and again.agent_config == job.agent_config
    assert again.strategy_config == job.strategy_config and again.tasks == job.tasks
    assert again.seed == 4 and type(again.strategy) is Replay
    plain.run.batch_sise = 8
    with pytest.raises(Exception, match=r"batch_sise.*\n.*full_key: run\.batch_sise"):
        build_run(plain, tmp_path / "bad")


# --------------------------------------------------------------------------------- plugins
def test_plugins_are_instantiated_after_the_strategy(tmp_path: Path) -> None:
    _, job = built(
        tmp_path, "experiment=smoke", "strategy=ewc", "plugins=[{_target_:trmgym.plugins.Plugin}]"
    )
    assert [type(p) for p in job.plugins] == [EWC, Plugin]
    assert job.plugins.names == ["ewc", "plugin"]


def test_a_plugin_that_is_not_a_plugin_is_refused(tmp_path: Path) -> None:
    cfg = composed("experiment=smoke", "plugins=[{_target_:collections.OrderedDict}]")
    with pytest.raises(TypeError, match=r"plugins\[0\] \(collections.OrderedDict\) must build"):
        build_run(cfg, tmp_path)
    cfg = composed("experiment=smoke", "plugins=[{_target_:trmgym.plugins.Nothing}]")
    with pytest.raises(ValueError, match=r"plugins\[0\] cannot be built: .*trmgym.plugins.Nothing"):
        build_run(cfg, tmp_path)
    cfg = composed("experiment=smoke", "plugins=[3]")
    with pytest.raises(ValueError, match=r"plugins\[0\] must be a node with a _target_, got 3"):
        build_run(cfg, tmp_path)


# ----------------------------------------------------------------- bad values name their key
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.batch_sise=8", r"Key 'batch_sise' not in 'RunSettings'"),
        ("seed=abc", r"Value 'abc' of type 'str' could not be converted to Integer"),
        ("strategy.mix_ratio=2", r"Key 'mix_ratio' not in 'NaiveConfig'"),
        ("agent.dqn.buffer_sise=0", r"Key 'buffer_sise' not in 'DQNHaltingConfig'"),
        ("agent.memory.capasity=8", r"Key 'capasity' not in 'MemoryConfig'"),
    ],
)
def test_unknown_keys_and_wrong_types_fail_while_composing(override: str, message: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException) as error:
        composed("agent/memory=bank", override)
    text = f"{error.value}\n{error.value.__cause__}"
    assert re.search(message, text) and f"full_key: {key}" in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["agent.halting=foo"], r"agent\.halting must be one of \['bce', 'dqn'\], got 'foo'"),
        (
            ["strategy=replay", "strategy.mix_ratio=2"],
            r"strategy\.mix_ratio must be a number in \[0, 1\], got 2\.0",
        ),
        (["agent.dqn.buffer_size=0"], r"agent\.dqn\.buffer_size must be an int >= 1, got 0"),
        (["run.batch_size=0"], r"run\.batch_size must be an int >= 1, got 0"),
        (["agent.size=huge"], r"agent\.size must be one of \['tiny', 'small', 'paper'\]"),
        (["strategy=ewc", "strategy.gamma=1.5"], r"strategy\.gamma must be a number in \[0, 1\]"),
        (["strategy=memory", "strategy.write_every=task"], r"strategy\.write_every must be one of"),
        (
            ["strategy=memory", "agent.memory.forget_threshold=0"],
            r"agent\.memory\.forget_threshold must be a number in \(0\.0, 1\.0\]",
        ),
    ],
)
def test_values_out_of_range_fail_in_the_build(
    overrides: list[str], message: str, tmp_path: Path
) -> None:
    cfg = composed("experiment=smoke", *overrides)
    with pytest.raises(ValueError, match=message):
        build_run(cfg, tmp_path)


@pytest.mark.parametrize("experiment", ["curriculum_sudoku", "curriculum_maze"])
def test_curriculum_experiments_ramp_up_to_the_evaluated_level(
    experiment: str, tmp_path: Path
) -> None:
    from trmgym.curricula.schedulers import DifficultyRamp

    cfg, job = built(tmp_path, f"experiment={experiment}")
    curriculum = job.plugins[-1]
    assert isinstance(curriculum, DifficultyRamp) and curriculum.name == "curriculum"
    task = job.tasks[0]
    hardest = curriculum.levels[-1]
    # the last level is what evaluation uses: the env's own configuration
    assert all(task.kwargs[key] == value for key, value in hardest.items())
    assert list(cfg.curriculum_comparison.against) == ["uniform"]
    assert job.plugin_records[-1]["config"].get("seed") is None  # derived at build, unrecorded


@pytest.mark.parametrize("experiment", ["curriculum_sudoku", "curriculum_maze"])
def test_every_comparison_key_of_an_experiment_can_be_overridden(experiment: str) -> None:
    """A key the experiment's YAML leaves out of ``curriculum_comparison`` cannot be overridden
    without ``+`` (Hydra refuses a new key): the YAMLs list every CurriculumComparison key."""
    from trmgym.comparison import check_comparison, comparison_workers
    from trmgym.config import CurriculumComparison

    cfg = composed(
        f"experiment={experiment}",
        "curriculum_comparison.workers=1",
        "curriculum_comparison.threshold=0.5",
        "curriculum_comparison.against=[lp]",
    )
    assert set(cfg.curriculum_comparison) == set(CurriculumComparison.__dataclass_fields__)
    assert comparison_workers(cfg) == 1
    assert check_comparison(cfg) == (["lp"], 0.5)


def test_a_meta_batch_larger_than_the_meta_training_tasks_is_refused_naming_the_limit() -> None:
    """Meta-batches are drawn without replacement: numpy's own refusal came mid-run, after the
    run directory was written, naming neither the key nor the limit."""
    from trmgym.fewshot_job import check_fewshot

    sizes = ["fewshot.families=[colour_map,translate]", "fewshot.train_tasks_per_family=3"]
    with pytest.raises(ValueError) as refused:
        check_fewshot(composed("experiment=fewshot_arcgen", *sizes, "meta.meta_batch=7"))
    assert str(refused.value) == (
        "meta.meta_batch must be <= the meta-training tasks, 6 here (2 fewshot.families x "
        "fewshot.train_tasks_per_family 3), got 7"
    )
    check_fewshot(composed("experiment=fewshot_arcgen", *sizes, "meta.meta_batch=6"))
    # scratch alone meta-trains nothing: no meta-batch is drawn
    only = "fewshot.methods=[scratch]"
    check_fewshot(composed("experiment=fewshot_arcgen", *sizes, "meta.meta_batch=7", only))
