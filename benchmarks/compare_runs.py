"""Held-out learning curves of several runs on one plot, with their final evaluations: how much
a result depends on the seed.

    python -m memgym.benchmarks.compare_runs runs/a runs/b runs/c --metric success \
        --out docs/object_recall_seeds.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memgym.trainers.curves import plot_learning_curves


def held_out_curve(run: Path, metric: str) -> list[dict]:
    """The periodic held-out evaluations of `run` (its `metrics.jsonl`)."""
    points = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if f"eval/{metric}" in record:
            points.append({"step": record["step"], metric: record[f"eval/{metric}"]})
    return points


def take_off(points: list[dict], metric: str, level: float = 0.8, window: int = 5) -> int | None:
    """The env step at which the mean of `window` consecutive held-out evaluations first reaches
    `level` (the step of the last of them), or None if it never does: when a run "took off",
    robust to one lucky evaluation of a few episodes."""
    values = [p[metric] for p in points]
    for end in range(window, len(values) + 1):
        if sum(values[end - window:end]) / window >= level:
            return points[end - 1]["step"]
    return None


def final(run: Path, metric: str) -> dict | None:
    """The final evaluation's mean and 95% CI, or None for a run that did not finish."""
    path = run / "eval.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["metrics"][metric]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--metric", default="accuracy")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--title", default=None)
    p.add_argument("--take-off", type=float, default=0.8, metavar="LEVEL",
                   help="report where the mean of 5 evaluations in a row first reaches LEVEL")
    args = p.parse_args(argv)
    curves, levels = {}, {}
    print(f"| run | env steps | take-off ({args.take_off:g}) | final held-out {args.metric} |")
    print("|---|---:|---:|---|")
    for run in args.runs:
        points = held_out_curve(run, args.metric)
        end = final(run, args.metric)
        label = run.name if end is None else f"{run.name} (final {end['mean']:.3f})"
        curves[label] = points
        steps = f"{points[-1]['step']:,}" if points else "-"
        shown = "unfinished" if end is None else f"{end['mean']:.3f} ± {end['ci95']:.3f}"
        up = take_off(points, args.metric, args.take_off)
        up_shown = "never" if up is None else f"{up:,}"
        print(f"| {run.name} | {steps} | {up_shown} | {shown} |")
        levels_path = run / "baseline_levels.json"
        if levels_path.exists() and not levels:
            levels = json.loads(levels_path.read_text())
    plot_learning_curves(curves, levels, args.out, title=args.title or ", ".join(
        r.name for r in args.runs), metric=args.metric)
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
