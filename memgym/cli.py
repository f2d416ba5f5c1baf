"""The `memgym` command line: `envs`, `eval`, `bench`, `train`, `sweep`, `launch`."""

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
        if hasattr(cls, "describe_preset"):
            size = cls.describe_preset(preset)
        else:
            size = f"length {preset.get('length')}, K={preset.get('capacity')}"
        print(f"{eid:<38} {cls.description} ({size})")
    return 0


def _cmd_eval(args) -> int:
    from memgym import report
    from memgym.evaluation import evaluate
    from memgym.envs.registration import family_of
    from memgym.registry import make_env, parse_kwargs, resolve_env, resolve_policy

    if args.suite:
        return _eval_suite(args)
    if not args.policy or not args.env:
        raise UsageError("eval needs --policy and --env (or --suite NAME)")
    env_id = resolve_env(args.env)
    policy = resolve_policy(args.policy, family_of(env_id))
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
    from memgym.policies import FAMILY_BASELINES
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
        for name, make_policy in FAMILY_BASELINES[args.suite].items():
            results.append(evaluate(make_policy(), env_id(task, level), args.episodes, args.seed))
    headline = "success" if args.suite == "embodied" else "accuracy"  # a goal reached, or answers
    print(report.suite_table(results, headline))
    print()
    print(report.suite_table(results, "lost_items"))
    if args.json:
        _write_json(args.json, [r.to_json() for r in results])
    if args.plot:
        report.suite_chart(results, args.plot, headline)
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
    if args.what == "train":
        return _bench_train(args)
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


def _bench_train(args) -> int:
    from memgym.benchmarks.train_speed import run_bench, summary
    from memgym.envs.config import ConfigError

    if args.steps < 1 or args.rounds < 1:
        raise UsageError(f"--steps and --rounds must be >= 1, got {args.steps} and {args.rounds}")
    command = f"memgym bench train --steps {args.steps} --rounds {args.rounds}"
    if args.json:
        command += f" --json {args.json}"
    overrides = {"policy": args.policy} if args.policy else {}
    if args.policy:
        command += f" --policy {args.policy}"
    if args.overlap:
        command += " --overlap"
    if args.precision != "fp32":
        command += f" --precision {args.precision}"
    try:
        result = run_bench(args.steps, args.rounds, command=command, overlap=args.overlap,
                           precision=args.precision, **overrides)
    except ConfigError as e:
        raise UsageError(f"config error: {e}") from None
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
    from memgym.trainers.session import headline_metric

    results = [*out["baselines"].values(), out["eval"]]
    out["eval"].policy = "trained"
    print(report.suite_table(results, headline_metric(out["eval"].summary())))
    print(f"eval report: {run_dir / 'eval.json'}; curve: {run_dir / 'learning_curve.png'}")
    return 0


def _train_config(config: str, overrides: list[str]):
    """A config file + overrides, checked (keys, types, env keywords) before any work starts."""
    from memgym.envs.config import ConfigError
    from memgym.registry import make_env, resolve_env
    from memgym.trainers.config import load_config

    try:
        cfg = load_config(config, overrides)
        cfg.env = resolve_env(cfg.env)
        make_env(cfg.env, cfg.env_kwargs).close()
    except ConfigError as e:
        raise UsageError(f"config error: {e}") from None
    return cfg


def _cmd_sweep(args) -> int:
    import time

    from memgym.envs.config import ConfigError
    from memgym.trainers.sweep import METRIC, parse_param, run_sweep, validate

    cfg = _train_config(args.config, args.overrides)
    if args.samples < 1:
        raise UsageError(f"--samples must be >= 1, got {args.samples}")
    try:
        params = [parse_param(p) for p in args.param]
        validate(cfg, params)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    name = args.name or f"sweep-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    root = Path(args.runs) / name
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} already exists: pick another --name")
    print(f"sweep of {', '.join(p.key for p in params)}: {args.samples} trials of "
          f"{cfg.algo.value} on {cfg.env} -> {root}/trial_<i>/")
    out = run_sweep(cfg, params, args.samples, root, args.max_concurrent)
    keys = [p.key for p in params]
    rows = [["trial", *keys, f"held-out {METRIC}"], ["---"] * (len(keys) + 2)]
    for t in sorted(out["trials"], key=lambda t: -(t[METRIC] if t[METRIC] is not None else -1)):
        values = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in t["params"].values()]
        score = f"{t[METRIC]:.3f}" if t[METRIC] is not None else f"failed: {t['error']}"
        rows.append([str(t["trial"]), *values, score])
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    best = out["best"]
    if best is None:
        print(f"no trial finished; see {root / 'tune'} for the errors")
        return 1
    chosen = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v:.6g}"
                      if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
    print(f"best: {best['trial']} ({METRIC} {best[METRIC]:.3f}) with {chosen}")
    print(f"  run folder: {best['run_dir']}; summary: {root / 'sweep.json'}")
    print(f"  train with it: memgym train {args.config} {' '.join(args.overrides)} {chosen}".rstrip())
    return 0


def _cmd_launch(args) -> int:
    import os
    import time

    from memgym.launch import LaunchError, follow, submit

    cfg = _train_config(args.config, args.overrides)
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UsageError("launch needs --address http://HOST:8265 (the Ray dashboard of the cluster)")
    if not address.startswith(("http://", "https://")):
        raise UsageError(f"--address {address} must be the dashboard URL, e.g. http://127.0.0.1:8265")
    name = args.name or f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    runs = str(Path(args.runs).resolve())
    try:
        jobs, job_id, cmd = submit(address, args.config, args.overrides, name, runs)
    except LaunchError as e:
        raise UsageError(str(e)) from None
    print(f"submitted Ray job {job_id} ({cfg.algo.value} on {cfg.env}) to {address}")
    print(f"  entrypoint: {cmd}")
    print(f"  run folder: {Path(runs) / name}")
    print(f"  follow its logs: ray job logs --address {address} --follow {job_id}")
    print(f"  status / stop:   ray job status --address {address} {job_id}  |  ray job stop ...")
    if not args.wait:
        return 0
    status = follow(jobs, job_id)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


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

    w = sub.add_parser("sweep", help="Ray Tune search over config values")
    w.add_argument("config", help="YAML config (see configs/)")
    w.add_argument("overrides", nargs="*", help="fixed key=value overrides")
    w.add_argument("--param", action="append", required=True, metavar="KEY=KIND:ARGS",
                   help="searched value: lr=loguniform:1e-4:1e-3, ent_coef=uniform:0:0.02, "
                        "hidden=choice:32,64, epochs=randint:2:8 (repeat for more keys)")
    w.add_argument("--samples", type=int, default=8, help="number of trials")
    w.add_argument("--name", help="sweep name (default: sweep-<config>-<timestamp>)")
    w.add_argument("--runs", default="runs", help="folder that holds runs")
    w.add_argument("--max-concurrent", type=int, default=0,
                   help="trials at once (default: as many as the CPUs allow)")
    w.set_defaults(func=_cmd_sweep)

    la = sub.add_parser("launch", help="submit `memgym train` as a Ray Job")
    la.add_argument("config", help="YAML config inside the project (see configs/)")
    la.add_argument("overrides", nargs="*", help="key=value overrides")
    la.add_argument("--address", help="Ray dashboard URL, e.g. http://127.0.0.1:8265 "
                                      "(default: $RAY_API_SERVER_ADDRESS or $RAY_ADDRESS)")
    la.add_argument("--name", help="run name (default: config name + timestamp)")
    la.add_argument("--runs", default="runs",
                    help="where the job writes its run folder (made absolute; on a real cluster "
                         "use storage the nodes share)")
    la.add_argument("--wait", action="store_true", help="print the job's logs until it ends")
    la.set_defaults(func=_cmd_launch)

    b = sub.add_parser("bench", help="speed benchmarks")
    b.add_argument("what", choices=["envs", "train"],
                   help="envs: env steps/s; train: training steps/s, ours vs SB3 MaskablePPO")
    b.add_argument("--json", help="write the figures as JSON here")
    b.add_argument("--seconds", type=float, default=2.0, help="envs: time per measurement")
    b.add_argument("--steps", type=int, default=32_768,
                   help="train: env steps timed per trainer per round")
    b.add_argument("--rounds", type=int, default=2, help="train: alternating rounds")
    b.add_argument("--policy", help="train: network of both trainers (default: the config default)")
    b.add_argument("--overlap", action="store_true",
                   help="train: ours collects on one Ray worker beside its update (overlap=true)")
    b.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="train: our update's precision (SB3 trains in float32)")
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
