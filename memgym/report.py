"""Tables and charts of evaluation results."""

from __future__ import annotations

from typing import Sequence

from memgym.evaluation import EvalResult

HEADLINE = ("return", "accuracy", "stale", "abstentions", "lost_items", "writes", "edits",
            "evictions", "mean_utilisation")


def metric_table(result: EvalResult, names: Sequence[str] | None = None) -> str:
    summary = result.summary()
    names = [n for n in (names or summary) if n in summary]
    width = max(len(n) for n in names)
    lines = [f"{result.policy} on {result.env}  ({result.episodes} episodes, seed {result.seed})",
             f"{'metric':<{width}}  {'mean':>9}  {'95% CI':>8}"]
    for n in names:
        s = summary[n]
        lines.append(f"{n:<{width}}  {s['mean']:>9.3f}  ±{s['ci95']:>7.3f}")
    return "\n".join(lines)


def suite_table(results: list[EvalResult], metric: str = "accuracy") -> str:
    """Envs as rows, policies as columns: `mean ± ci95` of one metric."""
    envs = list(dict.fromkeys(r.env for r in results))
    policies = list(dict.fromkeys(r.policy for r in results))
    cell = {(r.env, r.policy): r.summary()[metric] for r in results}
    env_w = max(len(e) for e in envs)
    col_w = max(13, *(len(p) for p in policies))
    lines = [f"{metric} (mean ± 95% CI)",
             f"{'env':<{env_w}}  " + "  ".join(f"{p:>{col_w}}" for p in policies)]
    for e in envs:
        row = []
        for p in policies:
            s = cell.get((e, p))
            row.append(f"{s['mean']:.3f} ± {s['ci95']:.3f}".rjust(col_w) if s else " " * col_w)
        lines.append(f"{e:<{env_w}}  " + "  ".join(row))
    return "\n".join(lines)


def suite_markdown(results: list[EvalResult], metric: str = "accuracy") -> str:
    envs = list(dict.fromkeys(r.env for r in results))
    policies = list(dict.fromkeys(r.policy for r in results))
    cell = {(r.env, r.policy): r.summary()[metric] for r in results}
    lines = ["| env | " + " | ".join(policies) + " |", "|---" * (len(policies) + 1) + "|"]
    for e in envs:
        vals = [f"{cell[(e, p)]['mean']:.2f}" if (e, p) in cell else "" for p in policies]
        lines.append(f"| {e} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def suite_chart(results: list[EvalResult], path: str, metric: str = "accuracy") -> None:
    """Grouped bars: one group per env, one bar per policy, 95% CI as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    envs = list(dict.fromkeys(r.env for r in results))
    policies = list(dict.fromkeys(r.policy for r in results))
    cell = {(r.env, r.policy): r.summary()[metric] for r in results}
    width = 0.8 / len(policies)
    x = np.arange(len(envs))
    fig, ax = plt.subplots(figsize=(max(7, 2.2 * len(envs)), 4.2))
    for j, p in enumerate(policies):
        means = [cell.get((e, p), {"mean": np.nan})["mean"] for e in envs]
        cis = [cell.get((e, p), {"ci95": 0})["ci95"] for e in envs]
        ax.bar(x + (j - (len(policies) - 1) / 2) * width, means, width, yerr=cis, label=p,
               capsize=2)
    ax.set_xticks(x, [e.removeprefix("memgym/") for e in envs], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.05 if metric == "accuracy" else None)
    ax.legend(fontsize=7, ncol=len(policies), loc="upper center", bbox_to_anchor=(0.5, -0.1),
              frameon=False)
    ax.set_title(f"{metric} per task and policy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
