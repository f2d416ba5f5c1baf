"""Learning benchmark: PPO, GRPO and SB3 MaskablePPO on Conflict-Medium under the same wall-clock
budget, scored on held-out seeds against the heuristics and the oracle; length generalisation of
the PPO policy at 10x and 100x the training length; PPO on embodied object recall (Easy).

    python -m memgym.benchmarks.learning --minutes 15 --out runs/bench-learning

Writes `summary.json` and `learning_curves.png` into the output folder and prints the Markdown
rows recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym

from memgym.policies.evaluation import evaluate
from memgym.trainers.config import load_config
from memgym.trainers.curves import plot_learning_curves
from memgym.trainers.loading import load_policy
from memgym.trainers.run import EVAL_SEED
from memgym.trainers.session import run_training

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"ppo": "quickstart.yaml", "grpo": "grpo_conflict.yaml", "maskable_ppo": "sb3_reference.yaml"}


def train(algo: str, minutes: float, out: Path, seed: int, reuse: bool) -> dict:
    """Train one algorithm (or, with `reuse`, read back a finished run folder) and summarise it
    from the files every run writes: metrics.jsonl, eval.json, baseline_levels.json."""
    # float32 throughout: the quickstart's `precision: auto` is for its 4 minutes; over 15 the
    # bf16 update settled lower (BENCHMARKS.md, "Training throughput").
    cfg = load_config(ROOT / "configs" / CONFIGS[algo], {
        "time_limit_minutes": minutes, "total_steps": 10**9, "seed": seed, "precision": "fp32"})
    run_dir = out / algo
    if not (reuse and (run_dir / "eval.json").exists()):
        run_training(cfg, run_dir, progress=True)
    history = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "eval/accuracy" in r:
            history.append({"elapsed": r["time"], "step": r["step"], "accuracy": r["eval/accuracy"]})
    report = json.loads((run_dir / "eval.json").read_text())
    levels = json.loads((run_dir / "baseline_levels.json").read_text())
    return {"algo": algo, "env": cfg.env, "minutes": minutes,
            "steps": history[-1]["step"] if history else None,
            "accuracy": report["metrics"]["accuracy"], "levels": levels, "history": history,
            "run_dir": str(run_dir)}


def length_generalisation(run_dir: Path, env: str, factors=(1, 10, 100), episodes=(200, 50, 30)):
    policy = load_policy(run_dir)
    base = gym.make(env).unwrapped.config.length
    rows = []
    for factor, n in zip(factors, episodes):
        length = base * factor
        result = evaluate(policy, env, n, EVAL_SEED, {"length": length}, progress=True)
        oracle = evaluate(load_oracle(), env, min(n, 12), EVAL_SEED, {"length": length},
                          progress=False)
        rows.append({"factor": factor, "length": length, "episodes": n,
                     "accuracy": result.summary()["accuracy"],
                     "oracle": oracle.summary()["accuracy"]["mean"]})
    return rows


def load_oracle():
    from memgym.policies import OraclePolicy

    return OraclePolicy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=15.0, help="training budget per algorithm")
    p.add_argument("--out", default="runs/bench-learning")
    p.add_argument("--algos", default="ppo,grpo,maskable_ppo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true",
                   help="read back run folders that already finished instead of training again")
    p.add_argument("--no-generalisation", action="store_true", help="skip the 10x/100x evaluation")
    p.add_argument("--embodied-steps", type=int, default=None,
                   help="PPO env steps on object recall (0 to skip; default: the config's)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
               "command": "python -m memgym.benchmarks.learning " + " ".join(argv or []),
               "runs": []}
    for algo in args.algos.split(","):
        summary["runs"].append(train(algo, args.minutes, out, args.seed, args.reuse))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    levels = summary["runs"][0]["levels"]
    if args.algos == "":
        return 0
    plot_learning_curves({r["algo"]: r["history"] for r in summary["runs"]}, levels,
                         out / "learning_curves.png", x="elapsed",
                         title=f"Conflict-Medium, {args.minutes:g} min per algorithm (held-out)")
    ppo = next((r for r in summary["runs"] if r["algo"] == "ppo"), None)
    if ppo and not args.no_generalisation:
        summary["length_generalisation"] = length_generalisation(Path(ppo["run_dir"]), ppo["env"])
    if args.embodied_steps != 0 and "memgym/ObjectRecall-Easy-v0" in gym.registry:
        # A budget in env steps, not minutes, so the learning rate anneals to 0 on any machine.
        overrides = {} if args.embodied_steps is None else {"total_steps": args.embodied_steps}
        cfg = load_config(ROOT / "configs" / "ppo_object_recall.yaml", overrides)
        run_dir = out / "object_recall"
        if not (args.reuse and (run_dir / "eval.json").exists()):
            run_training(cfg, run_dir, progress=True)
        report = json.loads((run_dir / "eval.json").read_text())
        summary["object_recall"] = {k: v["mean"] for k, v in report["metrics"].items()}
        summary["object_recall_levels"] = json.loads((run_dir / "baseline_levels.json").read_text())
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_markdown(summary)
    return 0


def print_markdown(summary: dict) -> None:
    print("\n| algo | budget | env steps | held-out accuracy | / oracle | best heuristic |")
    print("|---|---|---|---|---|---|")
    for r in summary["runs"]:
        lv = r["levels"]
        best = max((v, k) for k, v in lv.items() if k not in ("oracle", "random"))
        acc = r["accuracy"]["mean"]
        print(f"| {r['algo']} | {r['minutes']:g} min | {r['steps']:,} | {acc:.3f} ± "
              f"{r['accuracy']['ci95']:.3f} | {acc / lv['oracle']:.2f} | {best[1]} {best[0]:.3f} |")
    for row in summary.get("length_generalisation", []):
        print(f"length x{row['factor']} ({row['length']}): accuracy "
              f"{row['accuracy']['mean']:.3f} ± {row['accuracy']['ci95']:.3f} (oracle {row['oracle']:.2f})")
    if "object_recall" in summary:
        print(f"object recall (Easy): {summary['object_recall']}")


if __name__ == "__main__":
    raise SystemExit(main())
