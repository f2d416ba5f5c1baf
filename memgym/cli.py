"""The `memgym` command line: `envs`, `eval`, `bench`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memgym.registry import UsageError


def _cmd_envs(args) -> int:
    import gymnasium as gym

    from memgym.envs.registration import registered_ids

    for eid in registered_ids():
        spec = gym.registry[eid]
        cls = spec.entry_point
        if isinstance(cls, str):
            module, name = cls.split(":")
            cls = getattr(__import__(module, fromlist=[name]), name)
        level = spec.kwargs.get("level", "")
        preset = cls.presets.get(type(next(iter(cls.presets)))(level), {})
        size = f"length {preset.get('length')}, K={preset.get('capacity')}"
        print(f"{eid:<38} {cls.description} ({size})")
    return 0


def _cmd_eval(args) -> int:
    from memgym import report
    from memgym.evaluation import evaluate
    from memgym.registry import make_env, parse_kwargs, resolve_env, resolve_policy

    if args.suite:
        return _eval_suite(args)
    if not args.policy or not args.env:
        raise UsageError("eval needs --policy and --env (or --suite NAME)")
    env_id = resolve_env(args.env)
    policy = resolve_policy(args.policy)
    kwargs = parse_kwargs(args.env_kwargs)
    make_env(env_id, kwargs).close()  # validate keywords before any work
    _check_episodes(args.episodes)
    result = evaluate(policy, env_id, args.episodes, args.seed, kwargs, policy_name=args.policy)
    print(report.metric_table(result))
    if args.json:
        _write_json(args.json, result.to_json())
    return 0


def _eval_suite(args) -> int:
    from memgym import report
    from memgym.envs.config import Level
    from memgym.envs.registration import FAMILIES, env_id
    from memgym.evaluation import evaluate
    from memgym.policies import BASELINES
    from memgym.registry import suggest

    if args.suite not in FAMILIES:
        raise UsageError(f"unknown suite '{args.suite}'{suggest(args.suite, FAMILIES)}")
    try:
        level = Level(args.level)
    except ValueError:
        raise UsageError(f"unknown level '{args.level}'; choose one of Easy, Medium, Hard") from None
    _check_episodes(args.episodes)
    results = []
    for task in FAMILIES[args.suite]:
        for name, make_policy in BASELINES.items():
            results.append(evaluate(make_policy(), env_id(task, level), args.episodes, args.seed))
    print(report.suite_table(results, "accuracy"))
    print()
    print(report.suite_table(results, "lost_items"))
    if args.json:
        _write_json(args.json, [r.to_json() for r in results])
    if args.plot:
        report.suite_chart(results, args.plot)
        print(f"chart written to {args.plot}")
    return 0


def _check_episodes(n: int) -> None:
    if n < 1:
        raise UsageError(f"--episodes must be >= 1, got {n}")


def _write_json(path: str, payload) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2))
    print(f"results written to {path}")


def _cmd_bench(args) -> int:
    from memgym.benchmarks.envs_speed import run_bench, summary

    if not args.seconds > 0:
        raise UsageError(f"--seconds must be > 0, got {args.seconds}")
    command = f"memgym bench {args.what} --seconds {args.seconds:g}"
    if args.json:
        command += f" --json {args.json}"
    result = run_bench(args.seconds, command=command)
    print()
    print(summary(result))
    if args.json:
        _write_json(args.json, result.to_json())
    return 0


def _cmd_train(args) -> int:
    import time

    from memgym.envs.config import ConfigError
    from memgym.registry import make_env, resolve_env
    from memgym.trainers.checkpoint import CheckpointError
    from memgym.trainers.config import load_config

    try:
        if args.resume:
            run_dir = Path(args.resume)
            if args.config or args.overrides:
                raise UsageError("--resume continues a run with its own config.yaml: "
                                 "give no CONFIG or overrides")
            if not (run_dir / "config.yaml").is_file():
                raise UsageError(f"{run_dir} is not a run folder (no config.yaml)")
            cfg = load_config(run_dir / "config.yaml")
        else:
            if not args.config:
                raise UsageError("train needs a CONFIG file (see configs/) or --resume RUN_DIR")
            cfg = load_config(args.config, args.overrides)
            name = args.name or f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = Path(args.runs) / name
            if (run_dir / "config.yaml").exists():
                raise UsageError(f"{run_dir} already exists: pick another --name or --resume it")
        cfg.env = resolve_env(cfg.env)
        make_env(cfg.env, cfg.env_kwargs).close()  # env keyword errors before any work starts
    except ConfigError as e:
        raise UsageError(f"config error: {e}") from None

    from memgym import report
    from memgym.trainers.session import run_training

    print(f"training {cfg.algo.value} on {cfg.env} -> {run_dir}")
    try:
        out = run_training(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    if out["stopped_early"]:
        print(f"stopped at step {out['global_step']}; continue with: "
              f"memgym train --resume {run_dir}")
        return 130
    results = [*out["baselines"].values(), out["eval"]]
    out["eval"].policy = "trained"
    print(report.suite_table(results, "accuracy"))
    print(f"eval report: {run_dir / 'eval.json'}; curve: {run_dir / 'learning_curve.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memgym", description="Train and evaluate memory policies.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("envs", help="list registered env ids").set_defaults(func=_cmd_envs)

    e = sub.add_parser("eval", help="evaluate a policy (or a suite of baselines)")
    e.add_argument("--policy", help="baseline name")
    e.add_argument("--env", help="env id, e.g. memgym/Conflict-Medium-v0")
    e.add_argument("--env-kwargs", help="overrides as k=v,k=v (e.g. length=10000,noise=0.1)")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", help="write the results as JSON here")
    e.add_argument("--suite", help="evaluate every baseline on every task of a family")
    e.add_argument("--level", default="Medium", help="level of the suite's tasks")
    e.add_argument("--plot", help="PNG comparison chart (with --suite)")
    e.set_defaults(func=_cmd_eval)

    t = sub.add_parser("train", help="train a memory policy from a YAML config")
    t.add_argument("config", nargs="?", help="YAML config (see configs/)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lr=1e-3 seed=2")
    t.add_argument("--name", help="run name (default: config name + timestamp)")
    t.add_argument("--runs", default="runs", help="folder that holds runs")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    b = sub.add_parser("bench", help="speed benchmarks")
    b.add_argument("what", choices=["envs"])
    b.add_argument("--json", help="write the figures as JSON here")
    b.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    from memgym.envs.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ConfigError) as e:  # ConfigError: a bad value found only at reset
        print(f"memgym: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
