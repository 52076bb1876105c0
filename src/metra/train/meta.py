"""`metra meta-train`: context-based meta-RL (PEARL, CoCOA) on a task family, and meta-test.

One iteration follows PEARL's schedule (oyster's `MetaRLAlgorithm.train`). The first also
collects `num_initial_steps` on every train task with z from the prior. Then
`num_tasks_sample` train tasks are drawn with replacement; each draw clears its task's context
and refills it with `num_steps_prior` steps with z from the prior, then
`num_extra_rl_steps_posterior` steps go to the RL data only: the first trajectory with z from
the prior, each later one with z from the posterior of a fresh sample of that context. A
collection of N steps runs whole episodes until the task has at least N transitions. Then
`grad_steps` updates, each on a meta-batch of `meta_batch` tasks drawn with replacement.
`MetaRunConfig.default` applies the family's own PEARL config (`FAMILY_DEFAULTS`).

Meta-test (`metra.eval.meta`): on every held-out task, `explore_trajectories` trajectories
with z from the prior, then one with z from the posterior of their context.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metra.agents import META_AGENTS
from metra.agents.pearl import PearlAgent, PearlConfig, sample_gaussian
from metra.envs.base import EVAL_SEED
from metra.envs.meta import MetaEnvBatch, MetaTasks, make_meta_tasks
from metra.eval.meta import meta_test, repeated
from metra.eval.plots import FLOOR, Curve, common_steps, line_plot, write_comparison
from metra.presets import (
    apply_overrides,
    check_logger,
    require_counts,
    resume_overrides,
)
from metra.replay import TaskReplay
from metra.rollout import agent_policy, random_policy, rollout
from metra.run.checkpoint import (
    Counters,
    has_checkpoint,
    load_checkpoint,
    resume_to,
    save_checkpoint,
)
from metra.run.config import SectionedConfig
from metra.run.folder import RunDir, write_json
from metra.run.logs import RunLogger, import_wandb, logged, read_progress
from metra.run.loop import Cadence, epoch_seed, finite_metrics, run_epochs

COLLECT_RULES = ("transitions", "trajectories")


@dataclass(frozen=True)
class MetaTrainConfig:
    """PEARL's schedule: its `configs/default.py`, with the 600 posterior steps and the 2
    exploration trajectories that all its MuJoCo configs set (`FAMILY_DEFAULTS` holds each
    family's own values); steps are env steps of training."""

    task: str = "cheetah_vel"
    algo: str = "pearl"
    seed: int = 0
    total_steps: int = 1_000_000
    num_initial_steps: int = 2000  # per train task, before the first update, z from the prior
    num_tasks_sample: int = 5  # train tasks collected per iteration
    num_steps_prior: int = 400  # per sampled task, z from the prior (context + RL data)
    num_extra_rl_steps_posterior: int = 600  # per sampled task, z from the posterior (RL only)
    grad_steps: int = 2000  # updates per iteration
    meta_batch: int = 16  # tasks per update
    batch_size: int = 256  # RL transitions per task per update
    # Context transitions per task per update and per posterior (PEARL's embedding_batch_size:
    # 64 in default.py, 100 or 256 in the family configs).
    context_size: int = 64
    replay_episodes: int = 1000  # episodes kept per train task
    chunk: int = 50  # updates per compiled call
    eval_every: int = 20_000  # env steps between meta-tests
    explore_trajectories: int = 2  # meta-test: trajectories with z from the prior
    eval_rollouts: int = 10  # meta-test: test tasks are repeated to at least this many envs
    logger: str = "csv"  # "wandb" also logs to Weights & Biases (pip install "metra[wandb]")
    # "transitions" (PEARL's InPlacePathSampler): N steps on a task are whole episodes until it
    # has >= N transitions, so episodes that end early (a falling ant) are followed by more.
    # "trajectories": ceil(N / episode_len) episodes however short (runs made before this
    # field existed).
    collect_until: str = "transitions"
    # True (PEARL's collect_data: clear_z, then infer_posterior after each trajectory): the
    # first trajectory of the posterior-z collection acts with z from the prior. False: all
    # from the posterior.
    extra_rl_first_prior: bool = True
    # True (PEARL): the tasks collected each iteration and each meta-batch's tasks are drawn
    # with replacement. False: without, where there are enough tasks.
    tasks_with_replacement: bool = True

    def __post_init__(self) -> None:
        require_counts(
            self,
            *("total_steps", "num_tasks_sample", "grad_steps", "meta_batch", "batch_size"),
            *("context_size", "replay_episodes", "chunk", "eval_every", "explore_trajectories"),
            "eval_rollouts",
        )
        if self.algo not in META_AGENTS:
            raise ValueError(f"unknown meta-RL algo {self.algo!r}; known: {', '.join(META_AGENTS)}")
        if self.num_steps_prior < 1:
            raise ValueError("num_steps_prior must be >= 1: the posterior needs context")
        if self.collect_until not in COLLECT_RULES:
            raise ValueError(
                f"collect_until must be one of {COLLECT_RULES}, got {self.collect_until!r}"
            )
        check_logger(self.logger)


# PEARL's per-family configs (oyster's configs/<family>.json over default.py) as (train fields,
# agent fields): num_train_steps_per_itr is grad_steps, embedding_batch_size context_size,
# num_exp_traj_eval explore_trajectories, num_evals x the test tasks eval_rollouts. point_goal
# (our own variant of the point robot) and Meta-World have no PEARL config: the defaults.
_OYSTER_MUJOCO = dict(
    num_initial_steps=2000, num_steps_prior=400, num_extra_rl_steps_posterior=600,
    explore_trajectories=2,
)  # fmt: skip
_BIG_CONTEXT = dict(_OYSTER_MUJOCO, context_size=256)
FAMILY_DEFAULTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cheetah_vel": (dict(_OYSTER_MUJOCO, context_size=100, eval_rollouts=30), {}),
    "cheetah_dir": (
        dict(
            _BIG_CONTEXT,
            meta_batch=4,
            num_steps_prior=1000,
            num_extra_rl_steps_posterior=1000,
            eval_rollouts=8,
        ),
        {},
    ),
    "ant_dir": (dict(_BIG_CONTEXT, meta_batch=4, grad_steps=4000, eval_rollouts=8), {}),
    "ant_goal": (
        dict(_BIG_CONTEXT, meta_batch=10, grad_steps=4000, eval_rollouts=30),
        dict(kl_weight=1.0),
    ),
    "humanoid_dir": (dict(_BIG_CONTEXT, grad_steps=4000, eval_rollouts=30), {}),
    "walker_rand_params": (
        dict(_OYSTER_MUJOCO, meta_batch=10, grad_steps=4000, context_size=100, eval_rollouts=20),
        dict(next_obs_in_context=True),  # its tasks differ in dynamics, not reward
    ),
}
# Values of the fields that runs saved before these fields existed trained with.
_BEFORE_FIDELITY_FIELDS = {
    "collect_until": "trajectories",
    "extra_rl_first_prior": False,
    "tasks_with_replacement": False,
}


@dataclass(frozen=True)
class MetaRunConfig(SectionedConfig):
    """Everything that defines a meta-RL run; written as config.json in the run folder."""

    TRAIN: ClassVar[type] = MetaTrainConfig
    TRAIN_BEFORE: ClassVar[dict[str, Any]] = _BEFORE_FIDELITY_FIELDS

    train: MetaTrainConfig
    agent: Any = field(default_factory=PearlConfig)

    @classmethod
    def agent_class(cls, train: MetaTrainConfig) -> type:
        return META_AGENTS[train.algo][0]

    @classmethod
    def default(cls, task: str, algo: str) -> MetaRunConfig:
        """PEARL's config of family `task` (`FAMILY_DEFAULTS` over the dataclass defaults)."""
        train_fields, agent_fields = FAMILY_DEFAULTS.get(task, ({}, {}))
        train = MetaTrainConfig(task=task, algo=algo, **train_fields)
        return cls(train, META_AGENTS[algo][0](**agent_fields))


def distinct_rounds(draws: np.ndarray) -> list[np.ndarray]:
    """Task draws split into rounds of distinct tasks, a task's k-th draw in round k.
    Collecting round by round, the tasks of a round as one batch, is PEARL's draw-by-draw
    collection: each draw clears its task's context before refilling it."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for task in draws.tolist():
        k = seen.get(task, 0)
        seen[task] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(task)
    return [np.array(r) for r in rounds]


def random_scores(
    run_dir: Path, family: MetaTasks, rollouts: int, seed: int = EVAL_SEED
) -> dict[str, float]:
    """Mean return (and success) of uniform random actions on the test tasks: the floor a
    meta-test curve is read against. Measured once per run folder, kept in random.json."""
    path = Path(run_dir) / "random.json"
    if path.exists():
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    envs = family.make_envs(repeated(family.test_tasks, rollouts))
    try:
        policy = random_policy(family.act_dim, seed)
        run = rollout(envs, policy, seed, family.episode_len)
    finally:
        envs.close()
    scores = {"random_return": float(run.returns().mean())}
    if family.has_success:
        scores["random_success"] = float(run.ever("success").mean())
    write_json(path, scores)
    return scores


def meta_batches(
    replay: TaskReplay,
    rng: np.random.Generator,
    n: int,
    cfg: MetaTrainConfig,
    crop_window: int = 0,
) -> dict[str, np.ndarray]:
    """n meta-batches stacked on a leading axis: per batch, `meta_batch` train tasks, RL
    transitions and a context of each (and CoCOA's crops of `crop_window` steps)."""
    num_train = len(replay.tasks)
    rows = []
    for _ in range(n):
        replace = cfg.tasks_with_replacement or cfg.meta_batch > num_train
        tasks = rng.choice(num_train, cfg.meta_batch, replace=replace)
        row = replay.sample_rl(rng, tasks, cfg.batch_size)
        row["context"] = replay.sample_context(rng, tasks, cfg.context_size)
        if crop_window:
            row.update(replay.sample_crops(rng, tasks, crop_window))
        rows.append(row)
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


class MetaTrainer:
    """Owns the task family, per-task replay, agent and logs of one meta-RL run folder."""

    def __init__(self, config: MetaRunConfig, run_dir: Path) -> None:
        self.config, self.cfg = config, config.train
        cfg = self.cfg
        self.run_dir = Path(run_dir)
        if cfg.logger == "wandb":
            import_wandb()  # a missing wandb fails here, before any work
        self.family = make_meta_tasks(cfg.task, cfg.seed)
        fam = self.family
        agent_cls = META_AGENTS[cfg.algo][1]
        self.agent: PearlAgent = agent_cls.create(config.agent, fam.obs_dim, fam.act_dim, cfg.seed)
        self.replay = TaskReplay(
            len(fam.train_tasks),
            cfg.replay_episodes,
            fam.episode_len,
            fam.obs_dim,
            fam.act_dim,
            config.agent.next_obs_in_context,
        )
        self.counters = Counters()
        resume = has_checkpoint(self.run_dir)
        if resume:
            self.agent, self.counters = load_checkpoint(self.run_dir, self.agent, self.replay)
        RunDir(self.run_dir).write_config(config.to_dict(), resumed=resume)
        self.logger = RunLogger(
            self.run_dir,
            self.counters.env_steps if resume else None,
            wandb=cfg.logger == "wandb",
        )
        random_scores(self.run_dir, fam, cfg.eval_rollouts)

    def _collect(
        self,
        tasks: np.ndarray,
        steps: int,
        prior_trajectories: float,
        for_context: bool,
        seed: int,
    ) -> None:
        """`steps` on each of the distinct train `tasks` (counted as `collect_until` says), one
        trajectory of every task still collecting at a time. Trajectory j of a task acts with
        z drawn from the prior while j < `prior_trajectories`, then from the posterior of a
        fresh context sample (PEARL's collect_data, the posterior updated every trajectory)."""
        fam, agent, cfg = self.family, self.agent, self.cfg
        key = jax.random.PRNGKey(seed)
        rng = np.random.default_rng(seed)
        collected = np.zeros(len(tasks), np.int64)
        active = np.zeros(len(tasks), bool)
        envs: MetaEnvBatch | None = None
        try:
            for j in itertools.count():
                if cfg.collect_until == "transitions":
                    wanted = collected < steps
                else:
                    wanted = np.full(len(tasks), j < math.ceil(steps / fam.episode_len))
                if not wanted.any():
                    break
                if envs is None or (wanted != active).any():  # tasks only ever drop out
                    if envs is not None:
                        envs.close()
                    active = wanted
                    envs = fam.make_envs([fam.train_tasks[i] for i in tasks[active]])
                now = tasks[active]
                k_z, k_act = jax.random.split(jax.random.fold_in(key, j))
                if j < prior_trajectories:
                    mu, var = agent.prior(len(now))
                else:
                    ctx = self.replay.sample_context(rng, now, cfg.context_size)
                    mu, var = agent.infer(jnp.asarray(ctx))
                policy = agent_policy(agent, sample_gaussian(k_z, mu, var), False, k_act)
                rows = rollout(envs, policy, seed + 100 * j, fam.episode_len).env_major()
                for i, task in enumerate(now):
                    self.replay.add(
                        int(task), {k: v[i : i + 1] for k, v in rows.items()}, for_context
                    )
                collected[active] += rows["length"]
                self.counters.env_steps += int(rows["length"].sum())
        finally:
            if envs is not None:
                envs.close()

    def batches(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """n meta-batches of this run's replay and schedule (`meta_batches`)."""
        return meta_batches(self.replay, rng, n, self.cfg, self.agent.crop_window)

    def train_epoch(self) -> dict[str, float]:
        cfg, c = self.cfg, self.counters
        seed = epoch_seed(cfg.seed, c.epoch)
        rng = np.random.default_rng(seed)
        num_train = len(self.family.train_tasks)
        if c.epoch == 0:
            everything = np.arange(num_train)
            self._collect(everything, cfg.num_initial_steps, math.inf, True, seed + 1)
        if cfg.tasks_with_replacement:
            draws = rng.choice(num_train, cfg.num_tasks_sample)
        else:
            draws = rng.choice(num_train, min(cfg.num_tasks_sample, num_train), replace=False)
        first_posterior = 1 if cfg.extra_rl_first_prior else 0
        for r, tasks in enumerate(distinct_rounds(draws)):
            for task in tasks:
                self.replay.clear_context(int(task))
            self._collect(tasks, cfg.num_steps_prior, math.inf, True, seed + 2 + 2 * r)
            if cfg.num_extra_rl_steps_posterior > 0:
                steps = cfg.num_extra_rl_steps_posterior
                self._collect(tasks, steps, first_posterior, False, seed + 3 + 2 * r)
        c.epoch += 1
        rows = []
        for start in range(0, cfg.grad_steps, cfg.chunk):
            n = min(cfg.chunk, cfg.grad_steps - start)
            self.agent, metrics = self.agent.update(self.batches(rng, n))
            c.updates += n
            rows.append(finite_metrics(metrics, f"env step {c.env_steps}"))
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def evaluate(self) -> dict[str, float]:
        cfg = self.cfg
        fam = self.family
        return meta_test(
            self.agent, fam, fam.test_tasks, cfg.explore_trajectories, cfg.eval_rollouts
        )

    def save(self) -> None:
        save_checkpoint(self.run_dir, self.agent, self.counters, self.replay)

    def run(self, progress: bool = True) -> Path:
        run_epochs(
            self,
            Cadence(self.cfg.total_steps, self.cfg.eval_every),
            lambda c: c.env_steps,
            f"{self.cfg.algo} {self.cfg.task}",
            progress,
            f"metra meta-train --resume {self.run_dir}",
        )
        write_curves(self.run_dir)
        return self.run_dir


CURVE_COLUMNS = ("test_return", "test_return_explore", "test_success", "test_success_explore")


def meta_test_rows(run_dir: Path) -> list[dict[str, float]]:
    """The meta-test rows of a run's progress.csv: env_steps and the CURVE_COLUMNS it has."""
    rows = [r for r in read_progress(run_dir) if r.get("test_return")]
    return [
        {"env_steps": float(r["env_steps"]), **{k: float(r[k]) for k in CURVE_COLUMNS if r.get(k)}}
        for r in rows
    ]


def write_curves(run_dir: Path) -> list[Path]:
    """meta_test.csv and meta_test.png: meta-test return (after the posterior and while
    exploring with the prior) against env steps, with the random policy's return."""
    run_dir = Path(run_dir)
    rows = meta_test_rows(run_dir)
    if not rows:
        return []
    columns = [k for k in ("env_steps", *CURVE_COLUMNS) if k in rows[0]]
    csv_path = run_dir / "meta_test.csv"
    lines = [",".join(columns)] + [",".join(f"{r[k]:g}" for k in columns) for r in rows]
    csv_path.write_text("\n".join(lines) + "\n")
    x = np.array([r["env_steps"] for r in rows])
    random = json.loads((run_dir / "random.json").read_text())
    config = RunDir(run_dir).read_config()["train"]
    title = f"{config['algo']} on {config['task']}, seed {config['seed']}"
    paths = [csv_path]
    for metric, label in (("return", "return"), ("success", "success rate")):
        if f"test_{metric}" not in rows[0]:
            continue
        curves = [
            Curve("after posterior", x, np.array([r[f"test_{metric}"] for r in rows])),
            Curve("exploring (prior z)", x, np.array([r[f"test_{metric}_explore"] for r in rows])),
        ]
        reference = Curve(FLOOR, x, np.array(random[f"random_{metric}"]))
        paths.append(
            line_plot(
                run_dir / f"meta_test_{metric}.png",
                curves,
                "env steps",
                f"meta-test {label}",
                title,
                reference,
            )
        )
    return paths


def train_meta(
    task: str,
    algo: str = "pearl",
    steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> Path:
    """Meta-train `algo` on task family `task` into `out` (default runs/meta-TASK-ALGO-seedS);
    a folder holding a checkpoint resumes with its own config (`steps` may raise the total).
    Returns the run folder."""
    run = RunDir(out if out is not None else Path("runs") / f"meta-{task}-{algo}-seed{seed}")
    with run.claim(resumable=True) as resuming:
        if resuming:
            saved = MetaRunConfig.from_dict(run.read_config())
            config = resume_to(run, resume_overrides(saved, list(overrides)), steps, "meta-train")
        else:
            keys = [o.split("=", 1)[0] for o in overrides]
            if any(k in ("algo", "train.algo", "task", "train.task") for k in keys):
                raise ValueError("choose the algorithm and task with --algo and --task")
            config = apply_overrides(MetaRunConfig.default(task, algo), list(overrides))
            config = config.with_train(seed=seed)
            if steps is not None:
                config = config.with_train(total_steps=steps)
        return MetaTrainer(config, run.path).run(progress)


def compare_runs(run_dirs: Sequence[Path], out: Path, metric: str = "test_return") -> list[Path]:
    """Meta-test `metric` of several runs of one task, seeds of one algorithm averaged:
    compare.csv and compare.png (eval/plots.write_comparison). Evaluations are matched across
    seeds by their multiple of `eval_every` (runs whose episodes end early cross it at
    different steps)."""
    groups: dict[str, list[dict[int, float]]] = {}
    tasks, floor = set(), []
    for run in map(Path, run_dirs):
        cfg = RunDir(run).read_config()["train"]
        tasks.add(cfg["task"])
        every = cfg["eval_every"]
        evals = {round(s / every) * every: v for s, v in logged(run, metric).items()}
        groups.setdefault(cfg["algo"], []).append(evals)
        random = json.loads((run / "random.json").read_text())
        floor.append(random[metric.replace("test", "random")])
    if len(tasks) != 1:
        raise ValueError(f"compare runs of one task; got {sorted(tasks)}")
    curves = {algo: common_steps(runs) for algo, runs in sorted(groups.items())}
    ylabel = f"meta-test {metric}"
    return list(write_comparison(Path(out), "compare", curves, floor, metric, ylabel, tasks.pop()))


def evaluate_run(run_dir: Path, rollouts: int | None = None) -> dict[str, float]:
    """Meta-test a run's last checkpoint on its test tasks; writes RUN_DIR/meta_test.json."""
    run_dir = Path(run_dir)
    config = MetaRunConfig.from_dict(RunDir(run_dir).read_config())
    cfg = config.train
    family = make_meta_tasks(cfg.task, cfg.seed)
    template = META_AGENTS[cfg.algo][1].create(config.agent, family.obs_dim, family.act_dim, 0)
    agent, counters = load_checkpoint(run_dir, template)
    scores = meta_test(
        agent, family, family.test_tasks, cfg.explore_trajectories, rollouts or cfg.eval_rollouts
    )
    random = random_scores(run_dir, family, cfg.eval_rollouts)
    scores = {"env_steps": counters.env_steps, **scores, **random}
    write_json(run_dir / "meta_test.json", scores)
    return scores
