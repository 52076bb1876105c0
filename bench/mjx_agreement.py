"""How closely the MJX envs follow the MuJoCo envs they mirror, printed as JSON.

    python bench/mjx_agreement.py                    # 10 steps of 2 envs; the Ant's 64 x 200
    python bench/mjx_agreement.py --envs 32 --steps 100   # what tests/test_mjx.py checks

Trajectories: from the same reset state under the same uniform actions in [-1.2, 1.2] (both
clip to [-1, 1]), the largest |obs| gap after each env step, per env and friction cone (its
own, and for the Ant an elliptic cone on both sides, which is the same in every tangent
direction: MJX orients the pyramidal cone's edges differently, see metra.envs.mjx).
Distribution: `--envs` Ants under their own cone and the same uniform actions for `--steps`
steps; mean and standard error of the return, the x-y displacement and the torso height in
both simulators.
"""

from __future__ import annotations

import argparse
import json
from contextlib import closing
from typing import Any

import jax.numpy as jnp
import mujoco
import numpy as np

from metra.envs import make_env
from metra.envs.mjx import ant_side_by_side, mirror

ELLIPTIC = mujoco.mjtCone.mjCONE_ELLIPTIC


def twins(name: str, n: int, cone: Any = None) -> tuple[Any, Any, Any]:
    """`n` reset MuJoCo envs of `name` (with `cone` if given), their MJX twin and its state."""
    env = make_env(name, seed=3, num_envs=n)
    env.reset()
    if cone is not None:
        for e in env._envs:  # type: ignore[attr-defined]
            e.model.opt.cone = cone
    return env, *mirror(env)  # type: ignore[arg-type]


def gaps(name: str, cone: Any, steps: int) -> list[float]:
    """The largest |obs| gap of 2 envs after each of `steps` env steps."""
    rng = np.random.default_rng(0)
    env, twin, state = twins(name, 2, cone)
    out = []
    with closing(env):
        for _ in range(steps):
            actions = rng.uniform(-1.2, 1.2, (2, env.spec.act_dim)).astype(np.float32)
            result = env.step(actions)
            state = twin.step(state, jnp.asarray(actions))
            out.append(float(np.abs(np.asarray(state.obs) - result.obs).max()))
    return out


def ant_distribution(n: int, steps: int) -> dict[str, dict[str, float]]:
    """Mean and standard error of the Ant's return, displacement and torso height."""
    return {
        what: {
            f"{sim}_{stat}": round(float(f), 4)
            for sim, v in zip(("mujoco", "mjx"), values, strict=True)
            for stat, f in (("mean", v.mean()), ("se", v.std() / np.sqrt(n)))
        }
        for what, values in ant_side_by_side(n, steps).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gap-steps", type=int, default=10, help="env steps of the gaps")
    parser.add_argument("--envs", type=int, default=64, help="Ants of the distribution")
    parser.add_argument("--steps", type=int, default=200, help="their env steps")
    args = parser.parse_args()
    result = {
        "trajectory_gaps": {
            "half_cheetah": gaps("half_cheetah", None, args.gap_steps),
            "ant_elliptic": gaps("ant", ELLIPTIC, args.gap_steps),
            "ant": gaps("ant", None, args.gap_steps),
        },
        "ant_distribution": ant_distribution(args.envs, args.steps),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
