"""`memgym sweep`: a Ray Tune search over `TrainConfig` values.

Each `--param KEY=KIND:ARGS` becomes a Tune search-space entry; every trial is an ordinary run
folder `runs/<name>/trial_<i>/` (config, TensorBoard, metrics, checkpoints, eval report, curve),
so a trial can be inspected, evaluated or resumed like any `memgym train` run. Trials report the
held-out accuracy at every periodic evaluation (so Tune schedulers can stop bad trials early) and
the final evaluation's accuracy last; the best trial is the one with the highest final accuracy.
`ray.init()` honours `RAY_ADDRESS`, so the same sweep runs on a cluster.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memgym.envs.config import ConfigError, nearest

from .config import Algo, TrainConfig, load_config

KINDS = {
    "loguniform": "KEY=loguniform:LOW:HIGH (LOW > 0)",
    "uniform": "KEY=uniform:LOW:HIGH",
    "randint": "KEY=randint:LOW:HIGH (integers, both ends included)",
    "choice": "KEY=choice:A,B,C",
}
METRIC = "accuracy"


@dataclass(frozen=True)
class ParamSpec:
    """One searched config key: `lr=loguniform:1e-4:1e-3` -> ParamSpec("lr", "loguniform", (1e-4, 1e-3))."""

    key: str
    kind: str
    args: tuple

    def domain(self):
        from ray import tune

        if self.kind == "loguniform":
            return tune.loguniform(*self.args)
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "randint":
            return tune.randint(self.args[0], self.args[1] + 1)  # Tune excludes the upper end
        return tune.choice(list(self.args))

    def extremes(self) -> list:
        """Values that must all make a valid config (the ends of a range, every choice)."""
        return list(self.args)


def parse_param(text: str) -> ParamSpec:
    """Parse `KEY=KIND:ARGS`; a `ConfigError` says what was wrong and shows the right form."""
    forms = "; ".join(KINDS.values())
    if "=" not in text or ":" not in text.split("=", 1)[1]:
        raise ConfigError(f"--param '{text}' must look like KEY=KIND:ARGS, one of: {forms}")
    key, spec = (s.strip() for s in text.split("=", 1))
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"--param '{text}': unknown kind '{kind}'{nearest(kind, KINDS)}; "
                          f"use one of: {forms}")
    _check_key(key, text)
    if kind == "choice":
        values = tuple(_literal(v) for v in rest.split(",") if v.strip())
        if not values:
            raise ConfigError(f"--param '{text}': choice needs at least one value, e.g. {KINDS[kind]}")
        return ParamSpec(key, kind, values)
    parts = rest.split(":")
    if len(parts) != 2:
        raise ConfigError(f"--param '{text}': {kind} needs two bounds: {KINDS[kind]}")
    try:
        low, high = (int(p) if kind == "randint" else float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--param '{text}': the bounds must be numbers: {KINDS[kind]}") from None
    if not low < high and not (kind == "randint" and low == high):
        raise ConfigError(f"--param '{text}': LOW must be below HIGH, got {low} and {high}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"--param '{text}': loguniform needs LOW > 0, got {low}")
    return ParamSpec(key, kind, (low, high))


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _check_key(key: str, text: str) -> None:
    if key.startswith("env_kwargs.") and len(key) > len("env_kwargs."):
        return
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    if key not in names:
        raise ConfigError(f"--param '{text}': unknown config key '{key}'{nearest(key, names)}")


def validate(base: TrainConfig, params: list[ParamSpec]) -> None:
    """Every end of every range must give a valid config, before any trial starts."""
    keys = [p.key for p in params]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise ConfigError(f"--param given twice for {', '.join(sorted(dupes))}")
    types = typing.get_type_hints(TrainConfig)
    for p in params:
        if p.kind in ("uniform", "loguniform") and types.get(p.key) is int:
            raise ConfigError(f"--param {p.key} is an integer: use {p.key}=randint:LOW:HIGH "
                              f"or {p.key}=choice:A,B")
        for value in p.extremes():
            try:
                cfg = load_config(None, {**base.to_dict(), p.key: value})
                if p.key.startswith("env_kwargs."):
                    import gymnasium as gym

                    gym.make(cfg.env, **cfg.env_kwargs).close()
            except ConfigError as e:
                raise ConfigError(f"--param {p.key}: the value {value!r} gives an invalid config: {e}") from None


# ---- the trial (runs inside a Ray worker) ------------------------------------------------------


def trial_index(trial_id: str) -> str:
    """Tune's trial ids end in a zero-padded counter (`a1b2c_00003` -> `3`)."""
    tail = trial_id.rsplit("_", 1)[-1]
    return str(int(tail)) if tail.isdigit() else trial_id


def memgym_trial(params: dict, base: dict, root: str) -> None:
    from ray import tune

    from .run import Trainer
    from .session import finish_run, run_training

    cfg = load_config(None, {**base, **params})
    run_dir = Path(root) / f"trial_{trial_index(tune.get_context().get_trial_id())}"
    (run_dir.parent).mkdir(parents=True, exist_ok=True)
    if cfg.algo is Algo.MASKABLE_PPO:  # one report, at the end
        out = run_training(cfg, run_dir, progress=False)
        tune.report({METRIC: out["eval"].summary()["accuracy"]["mean"], "final": True,
                     "run_dir": str(run_dir)})
        return
    trainer = Trainer(cfg, run_dir)
    try:
        while True:
            before, seen = trainer.iteration, len(trainer.history)
            trainer.train(max_iterations=cfg.eval_every, progress=False)
            if len(trainer.history) > seen:
                h = trainer.history[-1]
                tune.report({METRIC: h["accuracy"], "return": h["return"], "step": h["step"],
                             "final": False, "run_dir": str(run_dir)})
            if trainer.iteration - before < cfg.eval_every:
                break  # the step or time budget is spent
    finally:
        trainer.close()
    out = finish_run(cfg, trainer.paths, trainer.policy(), trainer.history)
    tune.report({METRIC: out["eval"].summary()["accuracy"]["mean"], "step": trainer.global_step,
                 "final": True, "run_dir": str(run_dir)})


# ---- the driver ----------------------------------------------------------------------------------


def run_sweep(base: TrainConfig, params: list[ParamSpec], samples: int, root: str | Path,
              max_concurrent: int = 0) -> dict:
    """Run the sweep; returns `{"best": {...}, "trials": [...]}`, also written to
    `root/sweep.json`."""
    import ray
    from ray import tune

    from .workers import init_ray

    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    validate(base, params)
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    base.save(root / "base_config.yaml")
    started_ray = not ray.is_initialized()
    init_ray()
    # A trial needs one CPU, plus one per Ray rollout worker it starts itself.
    bundles = [{"CPU": 1}] + [{"CPU": 1}] * base.num_workers
    trainable = tune.with_resources(
        tune.with_parameters(memgym_trial, base=base.to_dict(), root=str(root)),
        tune.PlacementGroupFactory(bundles),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={p.key: p.domain() for p in params},
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=samples,
                                    max_concurrent_trials=max_concurrent or None),
        run_config=tune.RunConfig(name="tune", storage_path=str(root), verbose=0),
    )
    try:
        grid = tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()
    trials = []
    for result in grid:
        metrics, config = result.metrics or {}, result.config or {}
        trials.append({
            "trial": f"trial_{trial_index(metrics['trial_id'])}" if "trial_id" in metrics else None,
            "params": {p.key: config.get(p.key) for p in params},
            METRIC: metrics.get(METRIC),
            "final": bool(metrics.get("final")),
            "run_dir": metrics.get("run_dir"),
            "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
        })
    finished = [t for t in trials if t[METRIC] is not None and t["error"] is None]
    best = max(finished, key=lambda t: t[METRIC]) if finished else None
    summary = {"base_config": base.to_dict(), "params": [dataclasses.asdict(p) for p in params],
               "samples": samples, "best": best, "trials": trials}
    (root / "sweep.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
