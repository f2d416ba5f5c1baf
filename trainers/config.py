"""`TrainConfig`: every knob of a training run, typed, documented and checked before work starts.

A YAML file in `configs/` is this dataclass written out; `key=value` overrides on the command line
are parsed against the field types. Unknown keys and impossible combinations raise `ConfigError`
naming the key and the fix.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import yaml

from memgym.envs.config import ConfigError, nearest
from memgym.policies.networks import STORE_NOVELTY_THRESHOLD, Architecture, build_network


class GrpoCredit(str, Enum):
    EPISODE = "episode"  # (R - group mean) / group std, the same for every step of an episode
    TO_GO = "to_go"  # reward-to-go against the group at the same stream position


class Critic(str, Enum):
    AUTO = "auto"  # privileged where the env provides the features (and the algo has a critic)
    OBSERVATION = "observation"  # the value head sees what the policy sees
    PRIVILEGED = "privileged"  # ... plus hidden-state features of the memory (asymmetric critic)


class DiscountClock(str, Enum):
    STEP = "step"  # discount every action
    ADVANCE = "advance"  # discount only actions that advance the task (an item, a world move)


class Precision(str, Enum):
    FP32 = "fp32"  # float32 throughout
    BF16 = "bf16"  # the update's forward and backward under bfloat16 autocast (`learner.py`)
    AUTO = "auto"  # bf16 where the CPU has native bfloat16 (and the algo is ours), else fp32


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Algo(str, Enum):
    PPO = "ppo"
    GRPO = "grpo"
    MASKABLE_PPO = "maskable_ppo"  # sb3-contrib's MaskablePPO, the reference implementation


@dataclass
class TrainConfig:
    env: str = "memgym/Conflict-Medium-v0"
    """Registered env id to train on."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword overrides of the env (e.g. {length: 400})."""
    algo: Algo = Algo.PPO
    """ppo (GAE + value head), grpo (group-relative, no critic) or maskable_ppo (SB3 reference)."""
    policy: Architecture = Architecture.SLOT_POOL
    """slot_pool (pointer over slots, pooled context), slot_attention, mlp or recurrent."""
    hidden: int = 64
    """Width of every hidden layer."""
    addressing: bool = True
    """Slot networks: add content-based addressing to the op logits (a learned strength per op
    times the slot's similarity to the item; `policies/networks.py`). Off, PPO on Conflict-Medium
    often settles at ~0.6 by keeping stale copies beside new versions (BENCHMARKS.md)."""
    query_addressing: bool = False
    """Slot networks on tasks with world actions (embodied, `ExplicitMemory`): also address
    RETRIEVE, gated by an unread question (`QUERY_ADDRESSING_INIT`). No effect on streaming tasks,
    whose RETRIEVE is addressed at every item. Opt-in: with `store_novelty` it took two stuck
    ObjectRecall-Easy seeds off the ~0.5 plateau and left two others on it (BENCHMARKS.md)."""
    store_novelty: bool = False
    """Slot networks on tasks with world actions: lower STORE logits by a learned strength times
    the item's similarity to the slot most like it (`STORE_NOVELTY_INIT`): do not write what
    memory already holds, so that a second object finds a free slot. No effect on streaming
    tasks. Opt-in: alone it freed no stuck seed; with `query_addressing`, see there."""
    novelty_threshold: float = STORE_NOVELTY_THRESHOLD
    """`store_novelty`: the similarity above which an item counts as held (the penalty grows
    from 0 there to the full strength at 1). 0 is the linear form of runs before it, which also
    penalised storing other objects (`STORE_NOVELTY_THRESHOLD`, `policies/networks.py`)."""
    seed: int = 0
    """Seeds torch, numpy and the training envs; evaluation uses held-out seeds."""
    total_steps: int = 1_000_000
    """Env steps to train for (summed over envs)."""
    time_limit_minutes: float = 0.0
    """Stop after this much wall time (0: no limit), checkpointing first."""
    num_envs: int = 32
    """Envs stepped together per rollout worker (or in-process)."""
    rollout_steps: int = 128
    """PPO: steps per env per iteration. GRPO: ignored (one whole episode per env)."""
    group_size: int = 8
    """GRPO: episodes per group sharing one stream seed (num_envs must be a multiple)."""
    lr: float = 1e-3
    """Adam learning rate."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over total_steps."""
    gamma: float = 0.999
    """Discount (answers can come hundreds of steps after the write that made them possible).
    GRPO uses it only with `grpo_credit: to_go`, on the reward still to come."""
    gae_lambda: float = 0.99
    """GAE lambda (PPO)."""
    critic: Critic = Critic.AUTO
    """PPO: `privileged` gives the value head hidden-state features of the memory (which slots
    hold the latest version of a fact, a stale one or a distractor; whether the item is a fact
    already held: `envs/privileged.py`), an asymmetric critic. The policy still sees only the
    observation, so it transfers unchanged; the advantages get far less noisy. Every memgym
    task's native vector env provides them (the embodied family: which slots hold what the task
    will ask about, distances to it and to the goal); `auto` uses them wherever they exist (PPO
    only)."""
    discount_clock: DiscountClock = DiscountClock.ADVANCE
    """PPO: `advance` applies gamma and lambda only on actions that move the task on (the next
    stream item, a world move), so memory ops on one item do not shorten the credit horizon;
    `step` discounts every action (as SB3 does). On Conflict-Medium `advance` lifted PPO's
    held-out accuracy after 4 minutes from 0.60 to 0.79 (BENCHMARKS.md). An advance is read off
    the item's `progress` feature; an `ExplicitMemory` env without a time limit has none (its
    progress stays 0, so nothing would be discounted): use `step` there."""
    clip: float = 0.2
    """PPO ratio clip."""
    epochs: int = 4
    """Optimisation epochs per batch."""
    minibatches: int = 4
    """Minibatches per epoch."""
    ent_coef: float = 0.003
    """Entropy bonus."""
    vf_coef: float = 4.0
    """Value loss weight (PPO). Large because returns are at most 1 (tiny value errors) while
    advantages are normalised: at 0.5 the shared trunk barely trains the critic."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    grpo_credit: GrpoCredit = GrpoCredit.EPISODE
    """GRPO: `episode` broadcasts the episode's group-relative return to all its steps; `to_go`
    judges each step by the reward still to come against its group at the same stream position
    (`trainers/advantages.py`), so a decision is not credited with earlier answers."""
    grpo_scale: bool = True
    """GRPO: divide group-centred returns by the group's std (true, GRPO) or only centre them
    (false, as Dr. GRPO). Without the division a group whose returns differ only by a small
    per-step cost (e.g. `env_kwargs: {write_cost: ...}` when no member succeeded) pushes only as
    hard as that cost, instead of as hard as a group where one member succeeded."""
    kl_coef: float = 0.0
    """GRPO: weight of the KL penalty to the frozen initial policy (0: none)."""
    num_workers: int = 0
    """0: rollouts in-process, no Ray. >0: that many Ray rollout actors (RAY_ADDRESS honoured)."""
    overlap: bool = False
    """Ray workers collect the next batch while the learner updates on this one, so a machine
    with a core to spare spends an iteration's time on the slower of the two instead of both.
    The next batch is collected with the weights from before the update: one update of policy
    lag, which the clipped ratio absorbs, since it is taken against the log-probabilities of the
    policy that acted. Needs num_workers >= 1. On Conflict-Medium it learned as well as the
    synchronous run in the same minutes; on ObjectRecall-Easy it took off later, in steps and in
    minutes (BENCHMARKS.md)."""
    eval_every: int = 10
    """Iterations between held-out evaluations (logged and plotted)."""
    eval_episodes: int = 32
    """Episodes per periodic evaluation."""
    final_eval_episodes: int = 200
    """Episodes of the final evaluation written to eval.json."""
    checkpoint_every: int = 10
    """Iterations between checkpoints."""
    torch_threads: int = 1
    """Intra-op threads for torch (small nets run fastest on one)."""
    precision: Precision = Precision.FP32
    """`bf16` runs the update's forward and backward under torch's bfloat16 autocast (matmuls in
    bfloat16, weights, gradients and Adam in float32): one update of the bench batch took 0.24 s
    against 0.39 s on a CPU with AVX512-BF16 (BENCHMARKS.md). Rollouts and evaluation stay in
    float32; the clipped ratio absorbs the rounding between the two (mean |log-prob difference|
    ~0.002). Refused where the CPU has no native bfloat16 (emulated, it would be slower). PPO and
    GRPO; not the SB3 backend. `auto` picks bf16 where it is native and the algo is ours, else
    fp32; the resolved config (config.yaml) records which ran. Faster to a given accuracy in
    the first minutes; in one 15-minute Conflict run it then settled lower (0.933 against 0.953)."""

    def __post_init__(self):
        self.algo = _enum(Algo, self.algo, "algo")
        self.policy = _enum(Architecture, self.policy, "policy")
        self.grpo_credit = _enum(GrpoCredit, self.grpo_credit, "grpo_credit")
        self.discount_clock = _enum(DiscountClock, self.discount_clock, "discount_clock")
        self.critic = _enum(Critic, self.critic, "critic")
        self.precision = _enum(Precision, self.precision, "precision")
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _field_types()[f.name])
        positive = ("hidden", "total_steps", "num_envs", "rollout_steps", "group_size", "epochs",
                    "minibatches", "eval_every", "eval_episodes", "final_eval_episodes",
                    "checkpoint_every", "torch_threads")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("gamma must be in (0, 1] and gae_lambda in [0, 1]")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.novelty_threshold < 1:
            raise ConfigError(f"novelty_threshold must be in [0, 1), got {self.novelty_threshold}")
        if self.num_workers < 0:
            raise ConfigError("num_workers must be >= 0 (0 runs rollouts in-process)")
        if self.overlap and (self.num_workers < 1 or self.algo is Algo.MASKABLE_PPO):
            raise ConfigError("overlap=true runs collection on Ray workers beside the learner: "
                              "set num_workers >= 1 (and algo ppo or grpo), or overlap=false")
        if self.algo is Algo.GRPO:
            if self.num_envs % self.group_size:
                raise ConfigError(
                    f"num_envs={self.num_envs} is not divisible by group_size={self.group_size}: "
                    f"set num_envs to a multiple of group_size (e.g. "
                    f"{max(1, self.num_envs // self.group_size) * self.group_size})"
                )
            if self.group_size < 2:
                raise ConfigError("group_size must be >= 2 for GRPO (advantages are relative)")
        stepped = self.algo in (Algo.PPO, Algo.MASKABLE_PPO)
        batch = self.num_envs * (self.rollout_steps if stepped else 1)
        if stepped and batch % self.minibatches:
            raise ConfigError(
                f"the batch num_envs*rollout_steps={batch} is not divisible by "
                f"minibatches={self.minibatches}: change minibatches or rollout_steps"
            )
        if self.algo is Algo.MASKABLE_PPO:
            # SB3 discounts every action and its critic sees the observation: the resolved
            # config (config.yaml) records what actually runs.
            self.discount_clock = DiscountClock.STEP
            if self.critic is Critic.AUTO:
                self.critic = Critic.OBSERVATION
        if self.critic is Critic.PRIVILEGED and self.algo is not Algo.PPO:
            raise ConfigError(f"critic=privileged is for algo=ppo (algo={self.algo.value} "
                              "has no critic of ours): set critic=observation")
        if self.precision is Precision.AUTO:
            ours = self.algo is not Algo.MASKABLE_PPO
            self.precision = Precision.BF16 if ours and native_bf16() else Precision.FP32
        if self.precision is Precision.BF16:
            if self.algo is Algo.MASKABLE_PPO:
                raise ConfigError("precision=bf16 is for algo=ppo or grpo (the SB3 backend trains "
                                  "in float32): set precision=fp32")
            if not native_bf16():
                raise ConfigError("precision=bf16: this CPU has no native bfloat16 (AVX512-BF16 "
                                  "or AMX), so the update would be slower: set precision=fp32")
        if self.policy is Architecture.RECURRENT and self.algo is Algo.MASKABLE_PPO:
            raise ConfigError("maskable_ppo has no recurrent policy here: use policy=slot_attention")

    @classmethod
    def for_inference(cls, data: dict[str, Any]) -> TrainConfig:
        """A saved config for work that never runs the update (rollout workers, evaluation,
        export, diagnosis): `precision` concerns the update only, so a bf16 run still loads on a
        machine without native bfloat16."""
        return cls(**{**data, "precision": Precision.FP32})

    # ---- I/O -----------------------------------------------------------------------------------

    def network(self, observation_space, privileged_dim: int = 0):
        """The untrained network this config describes, for an env with `observation_space`."""
        return build_network(self.policy, observation_space, self.hidden, privileged_dim,
                             self.addressing, self.query_addressing, self.store_novelty,
                             self.novelty_threshold)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in d.items()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _enum(cls, value, name):
    try:
        return cls(value)
    except ValueError:
        choices = [e.value for e in cls]
        raise ConfigError(f"{name}={value!r} is not one of {choices}{nearest(str(value), choices)}") from None


def _check_type(name: str, value: Any, expected: Any) -> None:
    if isinstance(expected, type) and issubclass(expected, Enum):
        return
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    origin = typing.get_origin(expected) or expected
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, origin):
        raise ConfigError(f"{name} must be {getattr(origin, '__name__', origin)}, got {value!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """`"lr=1e-3"` -> `("lr", 0.001)`; values are Python/YAML literals, else strings."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = yaml.safe_load(raw)
    return key, value


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Read a YAML config and apply overrides; `env_kwargs.X=v` sets one env keyword."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p} must hold a mapping of config keys")
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    for key, value in items:
        if key.startswith("env_kwargs."):
            data.setdefault("env_kwargs", {})[key.split(".", 1)[1]] = value
        else:
            data[key] = value
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown config key '{key}'{nearest(key, names)}")
    return TrainConfig(**data)
