"""Named, documented run configurations, and `key=value` overrides on top of them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metra.agents import SKILL_AGENTS
from metra.envs import env_spec
from metra.errors import RunFolderError
from metra.run.config import SectionedConfig, build_config


def require_counts(config: Any, *names: str) -> None:
    """One error naming every field of `names` that is below 1."""
    bad = [f"{k}={getattr(config, k)}" for k in names if getattr(config, k) < 1]
    if bad:
        raise ValueError(f"these must be >= 1: {', '.join(bad)}")


NORMALIZERS = ("random_rollouts", "warmup")
COLLECT_MODES = ("serial", "overlapped")
BACKENDS = ("mujoco", "mjx")
WARMUP_ACTIONS = ("policy", "uniform")
LOGGERS = ("csv", "wandb")  # "csv": progress.csv + TensorBoard; "wandb" adds Weights & Biases


def check_logger(logger: str) -> None:
    """The `logger` field of every workflow's train config names one of LOGGERS."""
    if logger not in LOGGERS:
        raise ValueError(f"logger must be one of {LOGGERS}, got {logger!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The online skill-discovery schedule; defaults are the official METRA state-based ones."""

    env: str = "ant"
    algo: str = "metra"
    seed: int = 0
    total_steps: int = 1_000_000  # env steps
    num_envs: int = 8  # trajectories per epoch, one fixed skill each, stepped as one batch
    grad_steps: int = 50  # gradient steps per epoch, all in one jitted call
    batch_size: int = 256
    replay_size: int = 1_000_000
    # Updates start once the replay holds this many transitions.
    min_replay: int = 10_000
    # How those first transitions act: "policy" (official) samples the freshly initialized
    # skill policy (tanh of about N(0, 1) per action dim), "uniform" takes uniformly random
    # actions.
    warmup_actions: str = "policy"
    # The state normalizer's mean and std. "random_rollouts" (official): measured on
    # `normalizer_episodes` uniformly random episodes of `normalizer_episode_len` steps (the
    # official presets: 10000 of length 50; 2000 reproduce them within ~2%). "warmup": the
    # first `min_replay` transitions (full-length random episodes, where most ants have
    # flipped, so x-y spreads 2-2.7x wider and phi reads position 2-2.7x weaker).
    normalizer: str = "random_rollouts"
    normalizer_episodes: int = 2000
    normalizer_episode_len: int = 50
    # False (official): the last step of an episode is terminal, no value is bootstrapped.
    # True bootstraps through the time limit, which is not part of the state (Pardo et al.,
    # 2018).
    bootstrap_time_limit: bool = False
    eval_every: int = 50_000  # env steps between coverage evaluations during training
    # Evaluation trajectories: deterministic, one skill each; discrete skills repeat
    # eval_skills // D times (official: 48 = 3 x 16), continuous ones are drawn fresh from
    # the prior at every evaluation (False: the same draw every time).
    eval_skills: int = 48
    eval_fresh_skills: bool = True
    checkpoint_every: int = 50_000  # env steps between checkpoints (also at the end, on Ctrl-C)
    log_every: int = 8_000  # env steps between rows of progress.csv
    # "serial" (official): collect epoch e, then update on it. "overlapped": a collector
    # thread rolls out epoch e + 1 under the agent from before update block e while that
    # block runs (a one-block policy lag; docs/throughput.md), on a second core.
    collect: str = "serial"
    # "mujoco": Gymnasium's MuJoCo envs, stepped on the host. "mjx": their MuJoCo MJX twin
    # (half_cheetah), where one whole epoch (rollout, replay insert, updates) is one jitted
    # call with the replay on the device; evaluation stays on MuJoCo (pip install
    # "metra[mjx]"; docs/throughput.md).
    backend: str = "mujoco"
    # "csv": progress.csv and TensorBoard; "wandb" also logs the same scalars and the
    # evaluation plots to Weights & Biases (pip install "metra[wandb]"; `--wandb`).
    logger: str = "csv"

    def __post_init__(self) -> None:
        require_counts(
            self,
            *("total_steps", "num_envs", "grad_steps", "batch_size", "replay_size"),
            *("eval_every", "eval_skills", "checkpoint_every", "log_every"),
            *("normalizer_episodes", "normalizer_episode_len"),
        )
        if self.collect not in COLLECT_MODES:
            raise ValueError(f"collect must be one of {COLLECT_MODES}, got {self.collect!r}")
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        check_logger(self.logger)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        mjx_fits = self.collect == "serial" and self.normalizer == "random_rollouts"
        if self.backend == "mjx" and not mjx_fits:
            raise ValueError(
                "backend=mjx runs each epoch as one jitted call: it takes collect=serial and "
                f"normalizer=random_rollouts, got collect={self.collect}, "
                f"normalizer={self.normalizer}"
            )
        if self.warmup_actions not in WARMUP_ACTIONS:
            raise ValueError(
                f"warmup_actions must be one of {WARMUP_ACTIONS}, got {self.warmup_actions!r}"
            )
        if not 0 < self.min_replay <= self.replay_size:
            raise ValueError(f"need 0 < min_replay ({self.min_replay}) <= replay_size")


@dataclass(frozen=True)
class RunConfig(SectionedConfig):
    """Everything that defines a run; written as config.json in the run folder."""

    TRAIN: ClassVar[type] = TrainConfig

    preset: str
    train: TrainConfig
    agent: Any = field(default=None)  # the algorithm's config dataclass

    @classmethod
    def agent_class(cls, train: TrainConfig) -> type:
        return algo_classes(train.algo)[0]


def algo_classes(name: str) -> tuple[type, type]:
    """(config class, agent class) of a registered algorithm."""
    if name not in SKILL_AGENTS:
        raise ValueError(f"unknown algo {name!r}; known: {', '.join(SKILL_AGENTS)}")
    return SKILL_AGENTS[name]


PRESETS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (description, train fields, agent fields)
    "ant": (
        "Ant-v5 from states, 2-D continuous skills (official METRA settings)",
        dict(env="ant"),
        dict(latent_dim=2, discrete=False),
    ),
    "half_cheetah": (
        "HalfCheetah-v5 from states, 16 discrete skills (official METRA settings)",
        dict(env="half_cheetah"),
        dict(latent_dim=16, discrete=True),
    ),
    "point": (
        "2-D point mass in a 20x20 room: the fast demo and test preset (about a CPU minute)",
        dict(
            env="point",
            total_steps=64_000,
            replay_size=100_000,
            min_replay=4_000,
            eval_every=16_000,
            checkpoint_every=16_000,
            log_every=3_200,
        ),
        # Smaller nets and a larger step size than Ant: the point needs far less capacity.
        dict(latent_dim=2, discrete=False, hidden=(256, 256), lr=3e-4),
    ),
}
# The official schedule at width 256 instead of 1024: ~10x cheaper updates on a CPU, and the
# skills move within one CPU hour (measured curves in docs/metra-fidelity.md).
PRESETS["ant_fast"] = (
    "ant at width 256 (official schedule otherwise): walking skills in ~1 CPU hour",
    {**PRESETS["ant"][1], "total_steps": 5_000_000, "checkpoint_every": 200_000},
    {**PRESETS["ant"][2], "hidden": (256, 256)},
)
PRESETS["half_cheetah_fast"] = (
    "half_cheetah at width 256 (official schedule otherwise), 2M env steps",
    {**PRESETS["half_cheetah"][1], "total_steps": 2_000_000},
    {**PRESETS["half_cheetah"][2], "hidden": (256, 256)},
)


def _on_mjx(name: str, num_envs: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Preset `name` on the MJX backend (a GPU's preset) with `num_envs` envs per epoch and
    the official ratio of one gradient step per 32 env steps (50 per 8 x 200), so an epoch is
    num_envs x 200 env steps and num_envs x 200 / 32 updates in one jitted call; it logs every
    epoch and evaluates and checkpoints every 4 epochs (docs/throughput.md)."""
    _, train, agent = PRESETS[name]
    epoch = num_envs * env_spec(train["env"]).episode_len
    schedule = dict(eval_every=4 * epoch, checkpoint_every=4 * epoch, log_every=epoch)
    return (
        f"{name} on MJX: {num_envs} envs and {epoch // 32:,} updates per epoch in one jitted call",
        {**train, "backend": "mjx", "num_envs": num_envs, "grad_steps": epoch // 32, **schedule},
        agent,
    )


PRESETS["half_cheetah_mjx"] = _on_mjx("half_cheetah", 256)
PRESETS["ant_mjx"] = _on_mjx("ant", 2048)
# The one-way room: the point preset with a current, and 4-D skills so that the quasimetric
# METRA (`--algo qmetra`) has 2 Euclidean and 2 asymmetric latent dims.
PRESETS["point_current"] = (
    "the point room with a +x current (upstream 4x slower than downstream), 4-D skills",
    {**PRESETS["point"][1], "env": "point_current"},
    {**PRESETS["point"][2], "latent_dim": 4},
)
# Pixel presets: the official METRA pixel settings (8 trajectories per epoch, replay 300k, or
# 100k for the kitchen). Evaluations render 48 episodes, so they run every 200k steps.
_PIXEL_TRAIN = dict(replay_size=300_000, eval_every=200_000, checkpoint_every=100_000)
PRESETS["quadruped_pixel"] = (
    "dm_control Quadruped from 64x64 pixels (3 frames), 4-D continuous skills (official)",
    dict(env="quadruped_pixel", total_steps=4_000_000, grad_steps=200, **_PIXEL_TRAIN),
    dict(latent_dim=4, discrete=False),
)
PRESETS["humanoid_pixel"] = (
    "dm_control Humanoid from 64x64 pixels (3 frames), 2-D continuous skills (official)",
    dict(env="humanoid_pixel", total_steps=4_000_000, grad_steps=200, **_PIXEL_TRAIN),
    dict(latent_dim=2, discrete=False),
)
PRESETS["kitchen_pixel"] = (
    "Franka kitchen from 64x64 pixels (3 frames), 24 discrete skills, fixed temperature",
    dict(
        env="kitchen_pixel",
        total_steps=2_000_000,
        grad_steps=100,
        **{**_PIXEL_TRAIN, "replay_size": 100_000, "eval_every": 100_000},
    ),
    dict(latent_dim=24, discrete=True, learn_temperature=False),
)
DEFAULT_PRESET = "point"


def preset_config(name: str, algo: str | None = None) -> RunConfig:
    """The preset's config for `algo` (default: the preset's own). The preset's agent fields
    (skill size and kind, widths) apply to every algorithm, so methods compare on one skill
    space; each algorithm's other fields keep its paper defaults."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    _, train_fields, agent_fields = PRESETS[name]
    train = TrainConfig(**train_fields)
    if algo is not None:
        train = dataclasses.replace(train, algo=algo)
    agent_cls = algo_classes(train.algo)[0]
    return RunConfig(preset=name, train=train, agent=agent_cls(**agent_fields))


def _parse_value(text: str, current: Any, key: str) -> Any:
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(current, tuple):
            return tuple(int(v) for v in text.split(",") if v)
        if isinstance(current, int):
            return int(float(text)) if "e" in text.lower() else int(text)
        if isinstance(current, float):
            return float(text)
    except ValueError:
        raise ValueError(f"bad value {text!r} for {key} (expected like {current!r})") from None
    return text


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ValueError(f"override {item!r} is not key=value")
    key, text = item.split("=", 1)
    return key, text


def with_algo(config: RunConfig, algo: str) -> RunConfig:
    """The same run with another algorithm, whose config starts from the preset's agent
    fields (or, outside any preset, from the fields both configs share)."""
    if algo == config.train.algo:
        return config
    train = dataclasses.replace(config.train, algo=algo)
    if config.preset in PRESETS:
        agent = preset_config(config.preset, algo).agent
    else:
        agent = build_config(algo_classes(algo)[0], dataclasses.asdict(config.agent))
    return dataclasses.replace(config, train=train, agent=agent)


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Apply `key=value` strings to a config with `train` and `agent` sections (a skill
    `RunConfig` or a QRL `GoalRunConfig`); keys are field names of the train or agent config, or
    dotted (`train.grad_steps=10`, `agent.hidden=256,256`). An `algo=` override is applied
    first, so the other keys may name fields of that algorithm's config."""
    pairs = [_split(item) for item in overrides]
    for key, text in pairs:
        if key in ("algo", "train.algo"):
            if not hasattr(config.train, "algo"):
                raise ValueError(
                    f"algo={text}: this command trains one algorithm and has no algo= override"
                    " (metra train takes algo=, metra meta-train --algo)"
                )
            config = with_algo(config, text)
    sections = {"train": config.train, "agent": config.agent}
    for key, text in pairs:
        section, _, name = key.rpartition(".")
        if section and section not in sections:
            raise ValueError(f"unknown section {section!r} in {key!r}; use train. or agent.")
        candidates = [section] if section else list(sections)
        found = [s for s in candidates if hasattr(sections[s], name)]
        if not found:
            valid = sorted(
                f"{s}.{f.name}" for s in candidates for f in dataclasses.fields(sections[s])
            )
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
        if len(found) > 1:
            raise ValueError(f"{key!r} is ambiguous; write train.{name} or agent.{name}")
        obj = sections[found[0]]
        value = _parse_value(text, getattr(obj, name), key)
        sections[found[0]] = dataclasses.replace(obj, **{name: value})
    return dataclasses.replace(config, train=sections["train"], agent=sections["agent"])


# What a resumed run may change: step sizes, the cadence of logs, evaluations and
# checkpoints, and where logs go. Everything else (widths, the env, batch and replay sizes,
# seeds, schedules) would make the checkpoint's state or the run's data order another run's.
SAFE_ON_RESUME = (
    "lr",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "eval_skills",
    "eval_episodes",
    "logger",
)


def resume_overrides(config: Any, overrides: list[str]) -> Any:
    """`apply_overrides` for a resumed run: refuses, by name, every key outside
    `SAFE_ON_RESUME`."""
    bad = [k for k, _ in map(_split, overrides) if k.rpartition(".")[2] not in SAFE_ON_RESUME]
    if bad:
        raise RunFolderError(
            f"a resumed run cannot change {', '.join(bad)}; it may change "
            f"{', '.join(SAFE_ON_RESUME)} (start a new run for the rest)"
        )
    return apply_overrides(config, overrides)
