"""Success curve of an offline QRL run: OUT.csv and OUT.png, success (5 tasks x the run's
evaluation episodes, deterministic) against gradient steps, with the wall-clock of each
evaluation read from the run's progress-bar log.

    python bench/qrl_curve.py RUN_DIR OUT_PREFIX TRAIN_LOG START_FILE

TRAIN_LOG: the stderr of `metra qrl` (tqdm lines "| 10.0k/200k [12:34<"); START_FILE: a file
whose first line is the `date -u` when the run started (only written into the CSV's header).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    run, out, log_file, start_file = (Path(a) for a in sys.argv[1:5])
    with open(run / "progress.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("success")]
    log = log_file.read_text()
    total = re.search(r"/(\d+(?:\.\d+)?k) \[", log).group(1)
    cols = ["grad_steps", "wall_min", "task1", "task2", "task3", "task4", "task5", "success"]
    with open(f"{out}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            k = int(r["grad_steps"]) / 1000
            tag = f"| {k:.2f}k/{total} [" if k < 10 else f"| {k:.1f}k/{total} ["
            m = re.search(re.escape(tag) + r"(?:(\d+):)?(\d+):(\d+)<", log)
            wall = ""
            if m:
                h, mi, sec = (int(g) if g else 0 for g in m.groups())
                wall = f"{(3600 * h + 60 * mi + sec) / 60:.1f}"
            w.writerow([r["grad_steps"], wall] + [r[c] for c in cols[2:]])
    x = [int(r["grad_steps"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k in range(1, 6):
        ax.plot(x, [float(r[f"task{k}"]) for r in rows], lw=0.8, alpha=0.5, label=f"task{k}")
    ax.plot(x, [float(r["success"]) for r in rows], "k-o", ms=3, lw=2, label="mean")
    ax.axhline(0.82, color="gray", ls="--", lw=0.8)
    ax.text(x[0], 0.84, "OGBench QRL ~0.82 (1M steps, batch 1024, 3x512)", fontsize=7)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("success (5 tasks)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"offline QRL {run.name} (started {start_file.read_text().splitlines()[0]})", fontsize=8
    )
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=120)
    print(Path(f"{out}.csv").read_text())


if __name__ == "__main__":
    main()
