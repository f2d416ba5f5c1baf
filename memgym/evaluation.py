"""Re-export: evaluation lives in `memgym.policies.evaluation` (trainers use it too)."""

from memgym.policies.evaluation import EvalResult, evaluate, mean_ci

__all__ = ["EvalResult", "evaluate", "mean_ci"]
