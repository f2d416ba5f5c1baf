"""One training run end to end: train, evaluate on held-out seeds, compare with the baselines on
the same seeds, and write the reports. The CLI, Ray Jobs and Ray Tune all call `run_training`."""

from __future__ import annotations

import json
from pathlib import Path

from memgym.envs.registration import family_of
from memgym.policies import FAMILY_BASELINES
from memgym.policies.evaluation import EvalResult, evaluate

from .config import Algo, TrainConfig
from .curves import plot_learning_curves
from .run import EVAL_SEED, RunPaths, Trainer


def baseline_levels(cfg: TrainConfig, episodes: int) -> dict[str, EvalResult]:
    """Every baseline on the held-out seeds the trained policy is evaluated on."""
    baselines = FAMILY_BASELINES[family_of(cfg.env) or "streaming"]
    return {name: evaluate(make(), cfg.env, episodes, EVAL_SEED, cfg.env_kwargs, progress=False)
            for name, make in baselines.items()}


def headline_metric(summary: dict) -> str:
    """What a run is judged by: accuracy on streaming tasks, success on embodied ones."""
    return "success" if "success" in summary else "accuracy"


def run_training(cfg: TrainConfig, run_dir: str | Path, resume: bool = False,
                 progress: bool = True, max_iterations: int | None = None) -> dict:
    paths = RunPaths(Path(run_dir))
    if cfg.algo is Algo.MASKABLE_PPO:
        from .sb3_backend import train_maskable_ppo

        trainer = train_maskable_ppo(cfg, paths, resume=resume, progress=progress,
                                     max_iterations=max_iterations)
        if trainer.stopped_early:
            return {"stopped_early": True, "run_dir": str(paths.root),
                    "iteration": trainer.iteration, "global_step": trainer.global_step}
    else:
        trainer = Trainer(cfg, paths.root, resume=resume)
        try:
            outcome = trainer.train(max_iterations=max_iterations, progress=progress)
        finally:
            trainer.close()
        if outcome["stopped_early"]:
            return {"stopped_early": True, "run_dir": str(paths.root), **outcome}
    return finish_run(cfg, paths, trainer.policy(), trainer.history)


def finish_run(cfg: TrainConfig, paths: RunPaths, policy, history: list[dict]) -> dict:
    result = evaluate(policy, cfg.env, cfg.final_eval_episodes, EVAL_SEED, cfg.env_kwargs,
                      progress=False, policy_name=str(paths.root))
    payload = result.to_json()
    payload["training"] = {"algo": cfg.algo.value, "steps": history[-1]["step"] if history else None}
    paths.eval.write_text(json.dumps(payload, indent=2))
    levels = baseline_levels(cfg, cfg.eval_episodes)
    metric = headline_metric(result.summary())
    summary = {name: r.summary()[metric]["mean"] for name, r in levels.items()}
    paths.levels.write_text(json.dumps(summary, indent=2))
    plot_learning_curves({cfg.algo.value: history}, summary, paths.curve,
                         title=f"{cfg.algo.value} on {cfg.env}", metric=metric)
    return {"run_dir": str(paths.root), "eval": result, "baselines": levels,
            "stopped_early": False}
