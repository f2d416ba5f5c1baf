"""Name resolution for the CLI: env ids, policies, keyword overrides. Bad names raise
`UsageError` with the nearest valid choices, which the CLI turns into exit code 2."""

from __future__ import annotations

import ast
import difflib

import gymnasium as gym

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.envs.registration import registered_ids
from memgym.policies import BASELINES, FAMILY_BASELINES


class UsageError(Exception):
    """A user mistake on the command line: printed without a traceback, exit code 2."""


def suggest(name: str, choices, n: int = 3) -> str:
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.4)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def resolve_env(env_id: str) -> str:
    if env_id in gym.registry:
        return env_id
    ids = registered_ids()
    if f"memgym/{env_id}" in gym.registry:  # allow leaving out the namespace
        return f"memgym/{env_id}"
    raise UsageError(f"unknown env '{env_id}'{suggest(env_id, ids)} (see `memgym envs`)")


def resolve_policy(name: str, family: str | None = None):
    """A baseline by name (of the env's family: `oracle` on an embodied task is the embodied
    oracle), or a trained policy from a run folder or checkpoint file."""
    baselines = FAMILY_BASELINES.get(family, BASELINES)
    if name in baselines:
        return baselines[name]()
    from pathlib import Path

    if Path(name).exists():
        from memgym.trainers.checkpoint import CheckpointError
        from memgym.trainers.loading import load_policy

        try:
            return load_policy(name)
        except CheckpointError as e:
            raise UsageError(str(e)) from None
    raise UsageError(
        f"unknown policy '{name}'{suggest(name, baselines)}; baselines: {', '.join(baselines)}, "
        "or a run folder / checkpoint path"
    )


def parse_kwargs(text: str | None) -> dict:
    """`"length=1000,noise=0.1,query_schedule=end"` -> dict with Python literals where possible."""
    out: dict = {}
    if not text:
        return out
    for part in text.split(","):
        if "=" not in part:
            raise UsageError(f"bad --env-kwargs entry '{part}': expected key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def make_env(env_id: str, kwargs: dict):
    """`gym.make` with keyword errors turned into `UsageError`."""
    from memgym.envs.config import ConfigError

    try:
        return gym.make(env_id, **kwargs)
    except ConfigError as e:
        raise UsageError(f"{env_id}: {e}") from None
