"""Pictures a person would rather look at than read: skills in x-y and in phi space, the
coverage curve, and the comparison of groups of runs that every comparison command writes."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from metra.envs import EnvSpec
from metra.eval.skills import coverage_coords, in_chunks, random_coverage
from metra.rollout import Trajectories
from metra.run.logs import logged, read_progress

FLOOR = "random"  # the uniformly random policy's name in comparison tables and legends


def skill_colors(latents: np.ndarray) -> np.ndarray:
    """One RGBA color per skill: hue = angle for 2-D continuous skills, else by index."""
    n, d = latents.shape
    if d == 2 and not np.allclose(latents.sum(-1), 1.0):
        hue = (np.arctan2(latents[:, 1], latents[:, 0]) / (2 * np.pi)) % 1.0
        return plt.get_cmap("hsv")(hue)
    return plt.get_cmap("hsv")(np.arange(n) / max(n, 1))


def _draw(ax: Any, points: np.ndarray, colors: np.ndarray, labels: tuple[str, str]) -> None:
    """points [T, n, 2]: one line per skill, a dot at its end."""
    for i in range(points.shape[1]):
        ax.plot(points[:, i, 0], points[:, i, 1], color=colors[i], lw=1.2, alpha=0.9)
        ax.scatter(points[-1, i, 0], points[-1, i, 1], color=colors[i], s=10)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.grid(alpha=0.3)


def _two_d(values: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, str]]:
    """[T, n, k] -> [T, n, 2]: 1-D against time, 2-D as is, more by PCA."""
    t, n, k = values.shape
    if k == 1:
        time = np.broadcast_to(np.arange(t)[:, None, None], (t, n, 1))
        return np.concatenate([values, time], -1), (names[0], "time step")
    if k == 2:
        return values, (names[0], names[1])
    flat = values.reshape(-1, k) - values.reshape(-1, k).mean(0)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    return (flat @ vt[:2].T).reshape(t, n, 2), ("PC 1", "PC 2")


def plot_skills(traj: Trajectories, agent: Any, spec: EnvSpec, out_dir: Path) -> list[Path]:
    """skills_xy.png (coverage coordinates) and, for agents with a phi (METRA, LSD),
    skills_phi.png (the learned latent space)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = skill_colors(traj.latents[0])
    panels = [("skills_xy", coverage_coords(traj, spec), spec.coord_names)]
    if hasattr(agent, "phi"):
        phi = in_chunks(agent.phi, traj.obs, len(spec.obs_shape))
        panels.append(("skills_phi", phi, tuple(f"phi {i + 1}" for i in range(phi.shape[-1]))))
    paths = []
    for name, values, names in panels:
        points, labels = _two_d(values, names)
        fig, ax = plt.subplots(figsize=(5, 5))
        _draw(ax, points, colors, labels)
        if name == "skills_xy" and len(spec.coord_names) == 2:
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{spec.name}: {traj.latents.shape[1]} skills, {name.split('_')[1]}")
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


@dataclass
class Curve:
    """One line of a line plot, with an optional shaded band (e.g. min..max over seeds)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    band: tuple[np.ndarray, np.ndarray] | None = None


def line_plot(
    path: Path,
    curves: list[Curve],
    xlabel: str,
    ylabel: str,
    title: str = "",
    reference: Curve | None = None,
) -> Path:
    """Curves against env steps; `reference` (y of one value, band optional) is drawn as a
    dashed horizontal line, e.g. a random policy's figure."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for curve in curves:
        (line,) = ax.plot(curve.x, curve.y, marker="o", ms=3, label=curve.label)
        if curve.band is not None:
            ax.fill_between(curve.x, *curve.band, color=line.get_color(), alpha=0.2)
    if reference is not None:
        ax.axhline(float(reference.y), color="gray", ls="--", label=reference.label)
        if reference.band is not None:
            ax.axhspan(*reference.band, color="gray", alpha=0.15)
    ys = [c.y for c in curves] + ([np.atleast_1d(reference.y)] if reference is not None else [])
    if min(float(np.min(y)) for y in ys) >= 0:
        ax.set_ylim(bottom=0)  # counts and rates start at zero, so differences read true
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1 or reference is not None:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_coverage_curve(run_dir: Path, env_name: str, episodes: int) -> Path | None:
    """plots/coverage.png from progress.csv, beside the coverage of `episodes` uniformly
    random episodes of `env_name` (None before the first evaluation)."""
    coverage = logged(run_dir, "coverage")
    if not coverage:
        return None
    curve = Curve("coverage", np.array(list(coverage)), np.array(list(coverage.values())))
    floor = Curve(FLOOR, np.zeros(1), np.asarray(random_coverage(env_name, episodes)))
    path = Path(run_dir) / "plots" / "coverage.png"
    return line_plot(path, [curve], "env steps", "coverage (1x1 bins)", reference=floor)


# The diagnostics of a skill run that tell why its coverage moves (docs/metra-fidelity.md).
DIAGNOSTICS = (
    "coverage",
    "displacement",
    "train_coverage",
    "reward",
    "phi_objective",
    "latent_step_sq",
    "lambda",
    "alpha",
    "entropy",
    "train_displacement",
)


def write_diagnostics(run_dirs: list[Path], out: Path) -> tuple[Path, Path]:
    """OUT.csv (run, env_steps and every diagnostic, the last value logged at or before each
    evaluation) and OUT.png (one panel per diagnostic, one line per run) for skill runs."""
    table: list[dict[str, str]] = []
    for run_dir in run_dirs:
        last: dict[str, str] = {}
        for row in read_progress(run_dir):
            last.update({k: v for k, v in row.items() if v != ""})
            if row.get("coverage"):
                keep = {k: last.get(k, "") for k in DIAGNOSTICS}
                table.append({"run": Path(run_dir).name, "env_steps": row["env_steps"], **keep})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path = out.with_suffix(".csv")
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["run", "env_steps", *DIAGNOSTICS])
        writer.writeheader()
        writer.writerows(table)
    fig, axes = plt.subplots(2, 5, figsize=(22, 8))
    for ax, key in zip(axes.flat, DIAGNOSTICS, strict=True):
        for run_dir in run_dirs:
            rows = [r for r in table if r["run"] == Path(run_dir).name and r[key] != ""]
            x = [float(r["env_steps"]) for r in rows]
            ax.plot(x, [float(r[key]) for r in rows], label=Path(run_dir).name)
        if not any(r[key] != "" for r in table):
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", transform=ax.transAxes)
        ax.set_title(key)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    png = out.with_suffix(".png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return csv_path, png


def common_steps(per_run: Sequence[Mapping[int, float]]) -> dict[int, list[float]]:
    """env step -> each run's value, at the steps every run of a group (its seeds) reached."""
    steps = sorted(set.intersection(*(set(run) for run in per_run))) if per_run else []
    return {step: [run[step] for run in per_run] for step in steps}


def write_comparison(
    out: Path,
    stem: str,
    groups: Mapping[str, Mapping[int, Sequence[float]]],
    floor: Sequence[float],
    metric: str,
    ylabel: str,
    title: str,
    xlabel: str = "env steps",
) -> tuple[Path, Path]:
    """OUT/STEM.csv (per group and env step: mean, std, min and max of `metric` over the
    group's runs, and their number; the random policy's `floor`, one figure per seed, as the
    group FLOOR at the first and last step) and OUT/STEM.png (each group's mean with a min..max
    band, the floor dashed): what every comparison command writes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{stem}.csv"
    last = max((max(steps) for steps in groups.values() if steps), default=0)
    rows = [(name, s, v) for name, steps in groups.items() for s, v in steps.items()]
    rows += [(FLOOR, s, floor) for s in (0, last)]
    stats = ("mean", "std", "min", "max")
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["algo", "env_steps", *(f"{metric}_{s}" for s in stats), "seeds"])
        for name, step, values in rows:
            v = np.asarray(values, float)
            figures = (v.mean(), v.std(), v.min(), v.max())
            writer.writerow([name, step, *(f"{x:.6g}" for x in figures), len(v)])
    curves = []
    for name, steps in groups.items():
        if not steps:
            continue  # no evaluation that all of the group's runs reached
        x = np.array(sorted(steps))
        v = np.array([steps[s] for s in x], float).reshape(len(x), -1)
        label = f"{name} ({v.shape[1]} run{'s' * (v.shape[1] > 1)})"
        curves.append(Curve(label, x, v.mean(1), (v.min(1), v.max(1))))
    r = np.asarray(floor, float)
    reference = Curve(FLOOR, np.zeros(1), r.mean(), (r.min(), r.max()))
    title = f"{title}: mean over runs, band = min..max"
    return csv_path, line_plot(out / f"{stem}.png", curves, xlabel, ylabel, title, reference)
