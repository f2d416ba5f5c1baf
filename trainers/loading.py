"""Load a trained policy from a run folder or a checkpoint file, for evaluation and export."""

from __future__ import annotations

from pathlib import Path

from memgym.policies.torch_policy import NeuralPolicy

from . import checkpoint
from .config import TrainConfig
from .vector import critic_width, make_vector_env


def load_policy(path: str | Path, deterministic: bool = True) -> NeuralPolicy:
    payload = checkpoint.load(path)
    cfg = TrainConfig.for_inference(payload["config"])
    probe = make_vector_env(cfg.env, cfg.env_kwargs, 1)
    space = probe.single_observation_space
    width = saved_critic_width(payload["net"], cfg, space, critic_width(cfg, probe))
    probe.close()
    net = cfg.network(space, width)
    try:
        net.load_state_dict(payload["net"])
    except RuntimeError as e:
        raise checkpoint.CheckpointError(f"checkpoint {path} does not match its config: {e}") from None
    name = Path(path).name if Path(path).is_dir() else Path(path).parent.parent.name
    return NeuralPolicy(net, name=name, deterministic=deterministic)


def saved_critic_width(weights: dict, cfg: TrainConfig, space, expected: int) -> int:
    """The privileged width the checkpoint's value head was trained with. It is `expected` for
    runs of this version; a run from before its env had privileged features (the embodied family
    under `critic: auto`) has none. Only the value head depends on it, which evaluation ignores."""
    plain = cfg.network(space).state_dict()
    for key, value in plain.items():
        if key.startswith("value_head") and key.endswith("weight") and key in weights:
            return int(weights[key].shape[-1] - value.shape[-1])
    return expected
