"""The learning-curve PNG of a run: held-out accuracy over training, with the heuristics and the
oracle drawn in as horizontal levels on the same seeds."""

from __future__ import annotations

from pathlib import Path


def plot_learning_curves(curves: dict[str, list[dict]], levels: dict[str, float], path: str | Path,
                         title: str, x: str = "step", metric: str = "accuracy") -> None:
    """`curves`: label -> list of {x: ..., metric: ...}; `levels`: baseline name -> value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, points in curves.items():
        if points:
            ax.plot([p[x] for p in points], [p[metric] for p in points], marker="o", ms=3,
                    label=label)
    palette = plt.get_cmap("Set2").colors  # curves use the default cycle; levels their own
    for i, (name, value) in enumerate(sorted(levels.items(), key=lambda kv: -kv[1])):
        color, ls = ("black", "--") if name == "oracle" else (palette[i % len(palette)], ":")
        ax.axhline(value, color=color, ls=ls, lw=1.2, label=f"{name} ({value:.2f})")
    ax.set_xlabel("env steps" if x == "step" else "seconds of training")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
