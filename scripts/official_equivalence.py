"""Per-minibatch equivalence of our METRA update with the official PyTorch code.

    python scripts/official_equivalence.py --official PATH --env half_cheetah
    python scripts/official_equivalence.py --official PATH --env ant --updates 30 --hidden 256
    python scripts/official_equivalence.py --official PATH --env ant --float64   # diagnostic

PATH is a checkout of seohongpark/METRA (its iod/, garagei/, garaged/src/garage, dowel/,
dowel_wrapper.py and global_context.py are enough). Nothing of it is copied here: its
modules are imported from PATH at run time, and the packages it imports that are not
installed (akro, gym, tabulate, wandb, moviepy, sklearn, ...; none is used by an update) are
replaced by empty stub modules. Needs torch (`pip install torch==2.13.0`, a CPU wheel). Not
part of CI or pytest.

What it does:
1. builds our agent: `preset_config(env).agent` with hidden=(H, H), `MetraAgent.create`,
   with the state normalizer measured on a few uniformly random rollouts of our env;
2. builds the official modules with the arguments tests/main.py gives them (policy
   GaussianMLPTwoHeadedModuleEx with a tanh trunk, xavier-normal-ex heads, TanhNormal, std
   in [1e-6, e^2]; phi = GaussianMLPIndependentStdModuleEx with ReLU, xavier-uniform; twin
   ContinuousMLPQFunctionEx critics; log alpha and log lambda ParameterModules; one Adam per
   module at lr 1e-4), and the official `iod.metra.METRA` algorithm object around them;
3. copies our initial weights into the official modules (torch Linear weights are the
   transpose of flax Dense kernels) and runs the same minibatches through both: ours with
   `agent.update(batch[None])` (the jitted `lax.scan` path training uses), the official one
   with `METRA._train_components` fed by a one-minibatch stand-in replay buffer, i.e. its
   own `_optimize_te` (phi, then log lambda), `_update_rewards` (reward from the phi just
   updated), `_optimize_op` (critics, policy, alpha, then the Polyak targets);
4. prints a JSON of the parameter differences per group (phi, log lambda, both critics and
   their targets, policy trunk, mean and log-std heads, log alpha) after the last update,
   the largest difference after any update, and the per-update relative differences of the
   logged quantities (phi loss, constraint penalty, lambda, reward, critic and actor losses,
   entropy, alpha) and the Adam moments; exit status 0 when everything passes.

Per group, with a = ours, b = official, b0 = the common start: max_abs = max |a - b|,
max_rel = max |a - b| / (|b| + 1e-8), rel_norm = ||a - b|| / ||b||, rel_to_update =
||a - b|| / ||b - b0|| (the gap against how far 30 updates moved the tensor). A group passes
when rel_norm <= --rtol (1e-4) and rel_to_update <= --update-rtol (1e-2); `elementwise_allclose`
(|a - b| <= 1e-6 + rtol |b| for every entry) is reported beside it. In float32 a few entries
miss that elementwise bound: Adam divides each gradient entry by its own running RMS, so an
entry whose gradient is tiny or a difference of nearly equal sums (phi(s') - phi(s) on
nearby states) turns float32 rounding into a visible step difference; `--float64` shows the
same runs agreeing to ~1e-15, i.e. the two updates are the same computation.

Adam's moments (exp_avg, exp_avg_sq) are compared too: they are the gradients before Adam's
normalization, which hides a gradient of the wrong scale (a wrong target entropy leaves log
alpha's steps at exactly lr while its moments differ by 40%). They pass when each group's
rel_norm <= --moment-rtol (1e-2 in float32): in float32 a ReLU pre-activation of phi or a
critic occasionally lies within rounding distance of 0 and takes a different sign on the two
sides (`relu_sign_flips_per_update`), which moves that group's gradient by about one
sample's share of the batch (1/256 ~ 4e-3; seen as a jump in `adam_mu_rel_norm_per_update`
at the update of the flip), then decays.

`--set KEY=VALUE` overrides a field of our agent config (e.g. `--set tanh_logdet=exact`,
`--set dist_reduce=sum`): a negative control, since any deviation from the official update
must fail.

`--phi-gain G` multiplies phi's initial output layer by G on both sides: at our init almost
no transition has ||phi(s') - phi(s)||^2 > 1 - slack, so the penalty term's gradient never
reaches phi; G = 3 makes 3.5% (half_cheetah) and 7.4% (ant) of the first minibatch active
(`constraint_active_*` in the JSON).

The SAC noise: our `sample_tanh_gaussian` draws `jax.random.normal(key, shape)`. The script
routes `metra.networks.jax.random.normal` through a wrapper that returns the same draw and
records it with an ordered `jax.debug.callback` (two draws per update: the next-state action
of the TD target, then the policy-loss action). The official `Normal.rsample` draws through
`torch.distributions.normal._standard_normal`, which the script replaces by a function that
hands out the recorded draws in the same order. So both sides see identical standard-normal
noise, and ours stays the compiled code path training runs.

Observed-state convention: the official state-based runs normalize observations in the env
wrapper (`consistent_normalize`), ours inside the agent; the official side gets
(obs - mean) / std computed in numpy, ours the raw states and the same mean and std.

`--float64` runs both sides in double precision (ours with jax_enable_x64 and every float
leaf of the agent cast; the official modules `.double()`, and its replay-to-tensor step
replaced by one that keeps float64 instead of its `.float()`), to tell rounding from a real
difference: with float64 the remaining gap is float64 rounding grown by 30 Adam steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

# Packages the official code imports at module level that updates never use; each is stubbed
# only when it is not installed.
STUB_PACKAGES = (
    "akro",
    "click",
    "cma",
    "gym",
    "joblib",
    "moviepy",
    "setproctitle",
    "sklearn",
    "tabulate",
    "tensorflow",
    "wandb",
)
ENVS = {  # our preset, official (dim_option, discrete)
    "half_cheetah": (16, True),
    "ant": (2, False),
}


# ---- the official code --------------------------------------------------------------------
class _StubModule(types.ModuleType):
    """A module whose every attribute is a MagicMock (and that can have submodules)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def import_official(path: Path) -> types.SimpleNamespace:
    """The official classes, imported from the checkout at `path`."""
    required = ("iod/metra.py", "garagei", "garaged/src/garage", "dowel_wrapper.py")
    missing = [r for r in required if not (path / r).exists()]
    if missing:
        raise SystemExit(f"{path} is not a METRA checkout (missing {', '.join(missing)})")
    sys.path[:0] = [str(path), str(path / "garaged" / "src")]
    absent = {n for n in STUB_PACKAGES if importlib.util.find_spec(n) is None}
    sys.meta_path.insert(0, _StubFinder(absent))
    import dowel_wrapper  # noqa: F401  (must come before dowel, as in the official code)
    from garage.torch.distributions import TanhNormal
    from garagei.torch.modules.gaussian_mlp_module_ex import (
        GaussianMLPIndependentStdModuleEx,
        GaussianMLPTwoHeadedModuleEx,
    )
    from garagei.torch.modules.parameter_module import ParameterModule
    from garagei.torch.optimizers.optimizer_group_wrapper import OptimizerGroupWrapper
    from garagei.torch.policies.policy_ex import PolicyEx
    from garagei.torch.q_functions.continuous_mlp_q_function_ex import ContinuousMLPQFunctionEx
    from garagei.torch.utils import xavier_normal_ex
    from iod.metra import METRA

    return types.SimpleNamespace(
        TanhNormal=TanhNormal,
        GaussianMLPIndependentStdModuleEx=GaussianMLPIndependentStdModuleEx,
        GaussianMLPTwoHeadedModuleEx=GaussianMLPTwoHeadedModuleEx,
        ParameterModule=ParameterModule,
        OptimizerGroupWrapper=OptimizerGroupWrapper,
        PolicyEx=PolicyEx,
        ContinuousMLPQFunctionEx=ContinuousMLPQFunctionEx,
        xavier_normal_ex=xavier_normal_ex,
        METRA=METRA,
    )


class OneBatchBuffer:
    """Stands in for the official PathBufferEx: `sample_transitions` returns the minibatch
    set last, in the official replay's layout ([B, 1] columns for scalars)."""

    n_transitions_stored = 10**9

    def __init__(self) -> None:
        self.batch: dict[str, np.ndarray] = {}

    def sample_transitions(self, n: int) -> dict[str, np.ndarray]:
        assert len(self.batch["obs"]) == n, (len(self.batch["obs"]), n)
        return self.batch


# tests/main.py's defaults (the README's state-based commands change none of these).
OFFICIAL = {
    "common_lr": 1e-4,
    "alpha": 0.01,
    "dual_lam": 30.0,
    "dual_slack": 1e-3,
    "sac_tau": 5e-3,
    "sac_discount": 0.99,
}


def build_official(
    off: types.SimpleNamespace, dims: tuple[int, int, int], discrete: bool, hidden: int,
    batch_size: int,
) -> Any:  # fmt: skip
    """The official METRA object for (obs_dim, act_dim, dim_option), its modules built with
    tests/main.py's arguments for a state-based run (model_master_dim=hidden, 2 layers, no
    nonlinearity override, so the policy trunk keeps garage's tanh)."""
    import torch

    obs_dim, act_dim, dim_option = dims
    lr = OFFICIAL["common_lr"]

    master_dims = [hidden, hidden]
    policy_module = off.GaussianMLPTwoHeadedModuleEx(
        input_dim=obs_dim + dim_option,
        output_dim=act_dim,
        hidden_sizes=master_dims,
        layer_normalization=False,
        max_std=np.exp(2.0),
        normal_distribution_cls=off.TanhNormal,
        output_w_init=functools.partial(off.xavier_normal_ex, gain=1.0),
        init_std=1.0,
    )
    option_policy = off.PolicyEx(
        name="option_policy", option_info={"dim_option": dim_option}, module=policy_module
    )
    # tests/main.py get_gaussian_module_construction(const_std=False, relu, xavier_uniform)
    traj_encoder = off.GaussianMLPIndependentStdModuleEx(
        std_hidden_sizes=master_dims,
        std_hidden_nonlinearity=torch.relu,
        std_hidden_w_init=torch.nn.init.xavier_uniform_,
        std_output_w_init=torch.nn.init.xavier_uniform_,
        init_std=1.0,
        min_std=1e-6,
        max_std=None,
        hidden_sizes=master_dims,
        hidden_nonlinearity=torch.relu,
        hidden_w_init=torch.nn.init.xavier_uniform_,
        output_w_init=torch.nn.init.xavier_uniform_,
        std_parameterization="exp",
        bias=True,
        spectral_normalization=0,
        input_dim=obs_dim,
        output_dim=dim_option,
    )
    dual_lam = off.ParameterModule(torch.Tensor([np.log(OFFICIAL["dual_lam"])]))
    qf1, qf2 = (
        off.ContinuousMLPQFunctionEx(
            obs_dim=obs_dim + dim_option,
            action_dim=act_dim,
            hidden_sizes=master_dims,
            hidden_nonlinearity=torch.relu,
        )
        for _ in range(2)
    )
    log_alpha = off.ParameterModule(torch.Tensor([np.log(OFFICIAL["alpha"])]))
    adam = torch.optim.Adam
    optimizer = off.OptimizerGroupWrapper(
        optimizers={
            "option_policy": adam([{"params": option_policy.parameters(), "lr": lr}]),
            "traj_encoder": adam([{"params": traj_encoder.parameters(), "lr": lr}]),
            "dual_lam": adam([{"params": dual_lam.parameters(), "lr": lr}]),
            "qf": adam([{"params": list(qf1.parameters()) + list(qf2.parameters()), "lr": lr}]),
            "log_alpha": adam([{"params": log_alpha.parameters(), "lr": lr}]),
        },
        max_optimization_epochs=None,
    )
    space = types.SimpleNamespace(
        shape=(act_dim,), low=-np.ones(act_dim, np.float32), high=np.ones(act_dim, np.float32)
    )
    return off.METRA(
        env_name="equivalence",
        algo="metra",
        env_spec=types.SimpleNamespace(action_space=space),
        option_policy=option_policy,
        traj_encoder=traj_encoder,
        skill_dynamics=None,
        dist_predictor=None,
        dual_lam=dual_lam,
        optimizer=optimizer,
        alpha=OFFICIAL["alpha"],
        max_path_length=200,
        n_epochs_per_eval=1000,
        n_epochs_per_log=100,
        n_epochs_per_tb=100,
        n_epochs_per_save=10000,
        n_epochs_per_pt_save=1000,
        n_epochs_per_pkl_update=1000,
        dim_option=dim_option,
        num_random_trajectories=48,
        num_video_repeats=2,
        eval_record_video=0,
        video_skip_frames=1,
        eval_plot_axis=None,
        name="METRA",
        device=torch.device("cpu"),
        sample_cpu=1,
        num_train_per_epoch=1,
        sd_batch_norm=1,
        skill_dynamics_obs_dim=obs_dim,
        trans_minibatch_size=batch_size,
        trans_optimization_epochs=1,  # one minibatch per _train_components call
        discount=OFFICIAL["sac_discount"],
        discrete=int(discrete),
        unit_length=1,
        qf1=qf1,
        qf2=qf2,
        log_alpha=log_alpha,
        tau=OFFICIAL["sac_tau"],
        scale_reward=1.0,
        target_coef=1.0,
        replay_buffer=OneBatchBuffer(),
        min_buffer_size=0,
        inner=1,
        num_alt_samples=100,
        split_group=65536,
        dual_reg=1,
        dual_slack=OFFICIAL["dual_slack"],
        dual_dist="one",
        pixel_shape=None,
    )


# ---- parameters, side by side -------------------------------------------------------------
Pair = tuple[str, str, np.ndarray, Any]  # group, name, ours in torch layout, official tensor
VIEWS = ("params", "adam_mu", "adam_nu")  # the weights, Adam's first and second moments


def param_pairs(agent: Any, algo: Any, view: str = "params") -> list[Pair]:
    """Every learned tensor of both sides, ours transposed to torch's [out, in] layout; with
    view "adam_mu" / "adam_nu", Adam's running moments of those tensors instead (the target
    critics, which no optimizer steps, are left out)."""
    pairs: list[Pair] = []
    torch_state = {
        id(p): state
        for opt in algo._optimizer._optimizers.values()
        for p, state in opt.state.items()
    }

    def tree(state: Any) -> Any:
        if view == "params":
            return state.params
        return getattr(state.opt_state[0], view.removeprefix("adam_"))

    def theirs(param: Any) -> Any:
        if view == "params":
            return param
        return torch_state[id(param)]["exp_avg" if view == "adam_mu" else "exp_avg_sq"]

    def linear(group: str, name: str, dense: Any, layer: Any, head: int | None = None) -> None:
        kernel, bias = np.asarray(dense["kernel"]), np.asarray(dense["bias"])
        if head is not None:
            kernel, bias = kernel[head], bias[head]
        pairs.append((group, f"{name}.weight", kernel.T, theirs(layer.weight)))
        pairs.append((group, f"{name}.bias", bias, theirs(layer.bias)))

    def mlp(group: str, dense: dict[str, Any], module: Any, head: int | None = None) -> None:
        for i, layer in enumerate(module._layers):
            linear(group, f"layer{i}", dense[f"Dense_{i}"], layer.linear, head)
        out = len(module._layers)
        linear(group, "output", dense[f"Dense_{out}"], module._output_layers[0].linear, head)

    mlp("phi", tree(agent.phi_state)["params"], algo.traj_encoder._mean_module)
    actor = tree(agent.sac.actor)["params"]
    trunk = algo.option_policy._module._shared_mean_log_std_network
    for i, layer in enumerate(trunk._layers):
        linear("policy_trunk", f"layer{i}", actor["MLP_0"][f"Dense_{i}"], layer.linear)
    linear("policy_mean_head", "mean", actor["Dense_0"], trunk._output_layers[0].linear)
    linear("policy_log_std_head", "log_std", actor["Dense_1"], trunk._output_layers[1].linear)
    critic = tree(agent.sac.critic)["params"]["VmapMLP_0"]
    target = agent.sac.target_critic["params"]["VmapMLP_0"]
    for h, (qf, target_qf) in enumerate([(algo.qf1, algo.target_qf1), (algo.qf2, algo.target_qf2)]):
        mlp(f"critic{h + 1}", critic, qf, head=h)
        if view == "params":
            mlp(f"target_critic{h + 1}", target, target_qf, head=h)
    for group, state, param in [
        ("log_lambda", agent.log_lambda, algo.dual_lam.param),
        ("log_alpha", agent.sac.log_alpha, algo.log_alpha.param),
    ]:
        pairs.append((group, "log", np.asarray(tree(state)["log"])[None], theirs(param)))
    return pairs


def copy_into_official(agent: Any, algo: Any) -> None:
    import torch

    with torch.no_grad():
        for group, name, ours, theirs in param_pairs(agent, algo):
            if tuple(ours.shape) != tuple(theirs.shape):
                raise SystemExit(f"{group}.{name}: ours {ours.shape} != official {theirs.shape}")
            theirs.copy_(torch.from_numpy(np.array(ours)))


def grouped(
    agent: Any, algo: Any, view: str = "params"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{group: (ours, official)}, every tensor of the group flattened into one vector."""
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for group, _, ours, theirs in param_pairs(agent, algo, view):
        a, b = out.setdefault(group, ([], []))
        a.append(np.asarray(ours, np.float64).ravel())
        b.append(theirs.detach().numpy().astype(np.float64).ravel())
    return {g: (np.concatenate(a), np.concatenate(b)) for g, (a, b) in out.items()}


# ---- data ---------------------------------------------------------------------------------
def transitions(env_name: str, seed: int, num_envs: int) -> dict[str, np.ndarray]:
    """Transitions of uniformly random rollouts of our env (the last step of each episode is
    terminal, mask 0, as the official replay has it)."""
    from metra.envs import make_env
    from metra.eval.skills import random_policy
    from metra.rollout import rollout

    env = make_env(env_name, seed, num_envs)
    no_latent = np.zeros((num_envs, 0), np.float32)
    trajectories = rollout(env, random_policy(env.spec.act_dim, no_latent, seed), seed)
    return trajectories.transitions(bootstrap_time_limit=False)


def minibatches(
    data: dict[str, np.ndarray], agent: Any, n: int, batch_size: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """n minibatches of transitions, each with fresh skills from our agent's prior."""
    import jax

    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n):
        idx = rng.integers(0, len(data["obs"]), batch_size)
        latent = np.asarray(agent.sample_latents(jax.random.PRNGKey(seed * 1000 + i), batch_size))
        batch = {k: data[k][idx] for k in ("obs", "next_obs", "action", "mask")}
        batches.append({**batch, "latent": latent})
    return batches


def official_batch(
    batch: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray, dtype: Any
) -> dict[str, np.ndarray]:
    """The same minibatch as the official replay returns it: normalized states (the official
    env wrapper normalizes), dones = 1 - mask, options = next_options = the skill."""
    mean, std = mean.astype(dtype), std.astype(dtype)
    return {
        "obs": (batch["obs"].astype(dtype) - mean) / std,
        "next_obs": (batch["next_obs"].astype(dtype) - mean) / std,
        "actions": batch["action"].astype(dtype),
        "dones": (1.0 - batch["mask"].astype(dtype))[:, None],
        "options": batch["latent"].astype(dtype),
        "next_options": batch["latent"].astype(dtype),
    }


def scale_phi_output(agent: Any, gain: float) -> Any:
    """Our agent with phi's output layer `gain` times larger (before both sides are made
    equal), so that more transitions violate ||phi(s') - phi(s)||^2 <= 1 and the penalty's
    gradient path is exercised."""
    params = agent.phi_state.params
    last = f"Dense_{len(params['params']) - 1}"
    layer = dict(params["params"][last])
    layer["kernel"] = layer["kernel"] * gain
    new = {"params": {**params["params"], last: layer}}
    return agent.replace(phi_state=agent.phi_state.replace(params=new))


def constraint_active(agent: Any, batch: dict[str, np.ndarray], slack: float) -> float:
    """Share of the batch where the clamp min(slack, 1 - dist) takes 1 - dist."""
    diff = np.asarray(agent.phi(batch["next_obs"])) - np.asarray(agent.phi(batch["obs"]))
    return float(np.mean(1.0 - (diff**2).mean(-1) < slack))


def relu_sign_flips(
    agent: Any, algo: Any, batch: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray
) -> dict[str, int]:
    """How many ReLU pre-activations of phi and the critics on this batch have a different
    sign under our weights and the official ones (both evaluated in float64): each flip
    changes one sample's gradient path, a jump no rounding argument bounds."""
    weights: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for group, name, ours, theirs in param_pairs(agent, algo):
        if group in ("phi", "critic1", "critic2") and name.startswith("layer"):
            a, b = weights.setdefault(group, ([], []))
            a.append(np.asarray(ours, np.float64))
            b.append(theirs.detach().numpy().astype(np.float64))
    obs, next_obs = ((batch[k] - mean) / std for k in ("obs", "next_obs"))
    critic_in = np.concatenate([obs, batch["latent"], batch["action"]], -1)
    inputs = {"phi": np.concatenate([obs, next_obs]), "critic1": critic_in, "critic2": critic_in}
    flips = {}
    for group, (ours, theirs) in weights.items():
        xa = xb = inputs[group].astype(np.float64)
        count = 0
        for k in range(0, len(ours), 2):  # (weight, bias) per hidden layer
            pre_a, pre_b = xa @ ours[k].T + ours[k + 1], xb @ theirs[k].T + theirs[k + 1]
            count += int(np.sum((pre_a > 0) != (pre_b > 0)))
            xa, xb = np.maximum(pre_a, 0.0), np.maximum(pre_b, 0.0)
        flips[group] = count
    return flips


# ---- noise --------------------------------------------------------------------------------
class NoiseTap:
    """Records every standard-normal draw of `metra.networks` and replays them to torch."""

    def __init__(self) -> None:
        self.queue: list[np.ndarray] = []

    def install(self) -> None:
        import jax
        import torch
        import torch.distributions.normal as torch_normal

        import metra.networks

        tap = self

        def record(x: np.ndarray) -> None:
            tap.queue.append(np.asarray(x))

        class RecordingRandom:
            def __getattr__(self, name: str) -> Any:
                return getattr(jax.random, name)

            @staticmethod
            def normal(key: Any, shape: Any = (), dtype: Any = None) -> Any:
                x = (
                    jax.random.normal(key, shape)
                    if dtype is None
                    else jax.random.normal(key, shape, dtype)
                )
                jax.debug.callback(record, x, ordered=True)
                return x

        class JaxProxy:
            random = RecordingRandom()

            def __getattr__(self, name: str) -> Any:
                return getattr(jax, name)

        metra.networks.jax = JaxProxy()  # type: ignore[assignment]

        def replay(shape: Any, dtype: Any = None, device: Any = None) -> Any:
            if not tap.queue:
                raise RuntimeError("the official code drew more noise than ours")
            x = tap.queue.pop(0)
            if tuple(x.shape) != tuple(shape):
                raise RuntimeError(f"noise of shape {x.shape} handed to a draw of {tuple(shape)}")
            return torch.from_numpy(np.array(x)).to(dtype=dtype, device=device)

        torch_normal._standard_normal = replay  # type: ignore[assignment]


# ---- the comparison -----------------------------------------------------------------------
def stats(ours: np.ndarray, theirs: np.ndarray, init: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours - theirs)
    moved = np.abs(theirs - init)
    return {
        "max_abs": float(diff.max()),
        # max |ours - official| / (|official| + 1e-8): dominated by the smallest entries
        "max_rel": float((diff / (np.abs(theirs) + 1e-8)).max()),
        "rel_norm": float(np.linalg.norm(ours - theirs) / (np.linalg.norm(theirs) + 1e-30)),
        # the gap against how far the official update moved the tensor from its start
        "rel_to_update": float(np.linalg.norm(ours - theirs) / (np.linalg.norm(moved) + 1e-30)),
        "max_abs_update": float(moved.max()),
    }


LOSSES = {  # ours (a function of our metrics) -> official tensor name (a function of tensors)
    "phi_loss": (
        lambda m: -(m["phi_objective"] + m["lambda"] * m["constraint_penalty"]),
        lambda t: t["LossTe"],
    ),
    "constraint_penalty": (lambda m: m["constraint_penalty"], lambda t: t["DualCstPenalty"]),
    "lambda": (lambda m: m["lambda"], lambda t: t["DualLam"]),
    "reward": (lambda m: m["reward"], lambda t: t["PureRewardMean"]),
    "critic_loss": (lambda m: m["critic_loss"], lambda t: t["LossQf1"] + t["LossQf2"]),
    "actor_loss": (lambda m: m["actor_loss"], lambda t: t["LossSacp"]),
    "entropy": (lambda m: m["entropy"], lambda t: -t["SacpNewActionLogProbMean"]),
    "alpha": (lambda m: m["alpha"], lambda t: t["Alpha"]),
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import torch

    from metra.agents.metra import MetraAgent
    from metra.presets import apply_overrides, preset_config
    from metra.train.online import obs_statistics

    torch.set_num_threads(1)
    off = import_official(Path(args.official).resolve())
    dim_option, discrete = ENVS[args.env]
    dtype = np.float64 if args.float64 else np.float32

    data = transitions(args.env, args.seed, args.rollouts)
    obs_dim, act_dim = data["obs"].shape[1], data["action"].shape[1]
    mean, std = obs_statistics(data["obs"])
    run_cfg = apply_overrides(preset_config(args.env), [f"agent.{kv}" for kv in args.set])
    agent_cfg = dataclasses.replace(run_cfg.agent, hidden=(args.hidden,) * 2)
    if (agent_cfg.latent_dim, agent_cfg.discrete) != (dim_option, discrete):
        raise SystemExit(f"preset {args.env} has skills {agent_cfg.latent_dim}, {discrete}")
    agent = MetraAgent.create(agent_cfg, obs_dim, act_dim, args.seed, mean, std)
    if args.float64:

        def to_f64(x: Any) -> Any:
            floating = jnp.issubdtype(jnp.result_type(x), jnp.floating)
            return x.astype(jnp.float64) if floating else x

        agent = jax.tree.map(to_f64, agent)
    if args.phi_gain != 1.0:
        agent = scale_phi_output(agent, args.phi_gain)
    batches = minibatches(data, agent, args.updates, args.batch_size, args.seed)
    batches = [{k: v.astype(dtype) for k, v in b.items()} for b in batches]

    dims = (obs_dim, act_dim, dim_option)
    algo = build_official(off, dims, discrete, args.hidden, args.batch_size)
    if args.float64:
        for module in algo.param_modules.values():
            module.double()
        for module in (algo.target_qf1, algo.target_qf2):
            module.double()
        # the official _sample_replay_buffer casts with .float(); keep float64 instead
        algo._sample_replay_buffer = lambda: {
            k: torch.from_numpy(v[:, 0] if v.shape[1] == 1 and "option" not in k else v)
            for k, v in algo.replay_buffer.batch.items()
        }
    copy_into_official(agent, algo)
    init = {g: b for g, (_, b) in grouped(agent, algo).items()}
    start = {g: float(np.abs(a - b).max()) for g, (a, b) in grouped(agent, algo).items()}
    assert max(start.values()) == 0.0, start

    active = [constraint_active(agent, b, agent_cfg.dual_slack) for b in batches[:1]]
    tap = NoiseTap()
    tap.install()
    worst = dict.fromkeys(init, 0.0)
    losses: dict[str, list[float]] = {k: [] for k in LOSSES}
    after_first: dict[str, float] = {}
    flips: list[dict[str, int]] = []
    mu_by_update: dict[str, list[float]] = {}
    for i, batch in enumerate(batches):
        if i:
            active.append(constraint_active(agent, batch, agent_cfg.dual_slack))
        flips.append(relu_sign_flips(agent, algo, batch, mean, std))
        agent, metrics = agent.update(jax.tree.map(lambda x: jnp.asarray(x)[None], batch))
        jax.block_until_ready(agent)
        jax.effects_barrier()
        if len(tap.queue) != 2:
            raise RuntimeError(f"update {i}: ours drew {len(tap.queue)} noise arrays, not 2")
        algo.replay_buffer.batch = official_batch(batch, mean, std, dtype)
        tensors = algo._train_components({})
        if tap.queue:
            raise RuntimeError(f"update {i}: the official code used {2 - len(tap.queue)} of 2")
        ours_m = {k: float(v) for k, v in metrics.items()}
        theirs_t = {k: v.detach() for k, v in tensors.items()}
        for name, (f_ours, f_theirs) in LOSSES.items():
            theirs = float(f_theirs(theirs_t).reshape(()))
            losses[name].append(abs(f_ours(ours_m) - theirs) / (abs(theirs) + 1e-8))
        for group, (a, b) in grouped(agent, algo).items():
            gap = float(np.abs(a - b).max())
            worst[group] = max(worst[group], gap)
            if i == 0:
                after_first[group] = gap
        for group, (a, b) in grouped(agent, algo, "adam_mu").items():
            rel = np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30)
            mu_by_update.setdefault(group, []).append(float(f"{rel:.2g}"))

    f32 = not args.float64
    rtol = args.rtol if args.rtol is not None else (1e-4 if f32 else 1e-10)
    update_rtol = args.update_rtol if args.update_rtol is not None else (1e-2 if f32 else 1e-9)
    atol = 1e-6 if f32 else 1e-14
    final = {g: stats(a, b, init[g]) for g, (a, b) in grouped(agent, algo).items()}
    for group, (a, b) in grouped(agent, algo).items():
        row = final[group]
        row["elementwise_allclose"] = bool(np.allclose(a, b, rtol=rtol, atol=atol))
        row["pass"] = row["rel_norm"] <= rtol and row["rel_to_update"] <= update_rtol
    for group, name, ours, theirs in param_pairs(agent, algo):
        gap = float(np.abs(ours - theirs.detach().numpy()).max())
        if gap >= final[group].get("worst_tensor_max_abs", -1.0):
            final[group].update(worst_tensor=name, worst_tensor_max_abs=gap)
    moment_rtol = args.moment_rtol if args.moment_rtol is not None else (1e-2 if f32 else 1e-9)
    moments: dict[str, dict[str, dict[str, Any]]] = {}
    for view in VIEWS[1:]:
        moments[view] = {}
        for group, (a, b) in grouped(agent, algo, view).items():
            rel = float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30))
            moments[view][group] = {
                "max_abs": float(np.abs(a - b).max()),
                "rel_norm": rel,
                "pass": rel <= moment_rtol,
            }
    return {
        "env": args.env,
        "updates": args.updates,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
        "dtype": np.dtype(dtype).name,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "skills": f"{dim_option} {'one-hot' if discrete else 'continuous (unit sphere)'}",
        "phi_gain": args.phi_gain,
        "agent_overrides": args.set,
        # share of transitions where 1 - ||phi(s') - phi(s)||^2 (mean over dims) < slack,
        # i.e. where the penalty's gradient reaches phi: first update, then over all
        "constraint_active_first": active[0],
        "constraint_active_mean": float(np.mean(active)),
        "pass_rule": f"per group: rel_norm <= {rtol} and rel_to_update <= {update_rtol}",
        "elementwise_allclose_rule": f"|ours - official| <= {atol} + {rtol} |official|",
        "params_after_last_update": final,
        # Adam's running gradient moments (exp_avg, exp_avg_sq): the gradients themselves,
        # before Adam's normalization hides a difference of scale
        "moment_pass_rule": f"per group: rel_norm <= {moment_rtol}",
        "adam_moments_after_last_update": moments,
        "adam_mu_rel_norm_per_update": mu_by_update,
        # ReLU pre-activations of phi / critics whose sign differs between the two weight
        # sets at the start of each update (see relu_sign_flips)
        "relu_sign_flips_per_update": {g: [f[g] for f in flips] for g in flips[0]},
        "max_abs_after_first_update": after_first,
        "max_abs_after_any_update": worst,
        # per update, |ours - official| / |official| of the logged quantity, then the max
        "loss_rel_diff_max": {k: max(v) for k, v in losses.items()},
        "loss_rel_diff_first_update": {k: v[0] for k, v in losses.items()},
        "pass": all(v["pass"] for v in final.values())
        and all(v["pass"] for rows in moments.values() for v in rows.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, help="a checkout of seohongpark/METRA")
    parser.add_argument("--env", choices=tuple(ENVS), default="half_cheetah")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rollouts", type=int, default=16, help="random episodes of data")
    parser.add_argument(
        "--phi-gain", type=float, default=1.0, help="scale phi's initial output layer (both sides)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an agent config override (a negative control: e.g. tanh_logdet=exact must fail)",
    )
    parser.add_argument(
        "--rtol", type=float, default=None, help="bound on rel_norm (1e-4; 1e-10 in float64)"
    )
    parser.add_argument(
        "--update-rtol",
        type=float,
        default=None,
        help="bound on rel_to_update (1e-2; 1e-9 in float64)",
    )
    parser.add_argument(
        "--moment-rtol",
        type=float,
        default=None,
        help="bound on the rel_norm of Adam's moments (1e-2; 1e-9 in float64)",
    )
    parser.add_argument("--float64", action="store_true", help="both sides in double precision")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
