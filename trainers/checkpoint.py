"""Checkpoints: weights, optimiser, RNG and rollout-worker states, written atomically, read with
a clear error when a file is missing, truncated or from another run."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
LATEST = "latest.pt"
# Config keys added after format 1 was fixed, with the value that reproduces what a checkpoint
# written before them ran: such a checkpoint loads as the network it holds.
PREDATING = {"addressing": False, "critic": "observation", "discount_clock": "step",
             "grpo_credit": "episode", "grpo_scale": True, "overlap": False,
             "query_addressing": False, "store_novelty": False, "novelty_threshold": 0.0}


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says which file and why."""


def save(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format_version": FORMAT_VERSION, **payload}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)  # a crash mid-write never leaves a half-written checkpoint behind


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / LATEST
        if not candidate.exists():
            raise CheckpointError(f"{path} holds no checkpoint ({candidate} is missing)")
        path = candidate
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a memgym checkpoint: {e}") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {payload.get('format_version') if isinstance(payload, dict) else '?'}, "
            f"expected {FORMAT_VERSION}"
        )
    for key in ("config", "net"):
        if key not in payload:
            raise CheckpointError(f"checkpoint {path} lacks '{key}'")
    payload["config"] = {**PREDATING, **payload["config"]}
    return payload


def save_iteration(folder: Path, iteration: int, payload: dict[str, Any]) -> Path:
    """Write `iter_<n>.pt` and refresh `latest.pt` (what `--resume` reads)."""
    path = folder / f"iter_{iteration:06d}.pt"
    save(path, payload)
    save(folder / LATEST, payload)
    return path


def check_config(payload: dict[str, Any], config: dict[str, Any]) -> None:
    if payload["config"] != config:
        raise CheckpointError(
            "the checkpoint was written with a different config than runs/<name>/config.yaml"
        )
