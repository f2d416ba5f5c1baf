"""Single-env steps per second of the streaming tasks, beside POPGym and MiniGrid in the same run.

Every env is stepped by the same loop: reset when an episode ends, actions drawn from a table of
random numbers made before the clock starts. For memgym the number picks uniformly among the valid
actions of `obs["action_mask"]` (one `nonzero`, a fraction of a microsecond); POPGym and MiniGrid
have no invalid actions, so it picks among all of them. Each env is timed twice: as `gym.make` returns
it (order enforcing, env checker, ...) and unwrapped.

Then the vectorised figures: each streaming and embodied task's native vector env (`gym.make_vec`,
same-step autoreset) at 1024 and 4096 envs, beside gymnasium's `SyncVectorEnv` of POPGym and MiniGrid
(at fewer envs: they step one env at a time, so their per-env rate hardly depends on N). All are
reported as env steps per second (vector steps x N), each memgym figure measured in a fresh
process (see `_in_fresh_process`). Actions come from a pre-drawn table too: for
memgym a uniform pick among each row's valid actions (batched, `RandomValidActions`), for the
references a uniform action. Timing starts after `VECTOR_WARMUP` vector steps, so autoresets are included. The load
average is recorded beside them, since the machine may be shared.

Run it with `memgym bench envs [--json PATH] [--seconds S]`.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from numba import njit

from memgym.envs.registration import can_return_views

LEVEL = "Medium"
POPGYM_ID = "popgym-RepeatPreviousEasy-v0"
MINIGRID_ID = "MiniGrid-MemoryS13-v0"
MODES = ("wrapped", "unwrapped")

_TABLE = 1 << 16  # pre-drawn random numbers, cycled
_CHECK_EVERY = 512  # steps between clock reads


@dataclass
class Measurement:
    env: str
    suite: str  # "memgym", "popgym" or "minigrid"
    mode: str  # "wrapped" (through gym.make) or "unwrapped"
    steps: int
    episodes: int
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time: less sensitive to a busy machine

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    @property
    def steps_per_cpu_s(self) -> float:
        return self.steps / self.cpu_seconds


@dataclass
class VectorMeasurement:
    env: str
    suite: str
    kind: str  # "native" (memgym's vector env) or "SyncVectorEnv"
    num_envs: int
    vector_steps: int
    seconds: float

    @property
    def steps_per_s(self) -> float:
        """Env steps per second: every vector step is `num_envs` env steps."""
        return self.vector_steps * self.num_envs / self.seconds


@dataclass
class BenchResult:
    date: str
    command: str
    seconds_per_measurement: float
    machine: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # suite -> why it was not run
    vector: list[VectorMeasurement] = field(default_factory=list)
    load_average: tuple[float, float, float] | None = None  # when the vectorised runs ended

    def rate(self, env: str, mode: str) -> float | None:
        for m in self.measurements:
            if m.env == env and m.mode == mode:
                return m.steps_per_s
        return None

    def ratios(self) -> dict[str, dict[str, dict[str, float]]]:
        """`{memgym env: {mode: {"popgym": x, "minigrid": y}}}`: memgym steps/s over theirs."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for m in self.measurements:
            if m.suite != "memgym":
                continue
            per_mode = out.setdefault(m.env, {}).setdefault(m.mode, {})
            for suite, ref in (("popgym", POPGYM_ID), ("minigrid", MINIGRID_ID)):
                theirs = self.rate(ref, m.mode)
                if theirs:
                    per_mode[suite] = m.steps_per_s / theirs
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "command": self.command,
            "seconds_per_measurement": self.seconds_per_measurement,
            "machine": self.machine,
            "unavailable": self.unavailable,
            "results": [
                asdict(m) | {"steps_per_s": m.steps_per_s, "steps_per_cpu_s": m.steps_per_cpu_s}
                for m in self.measurements
            ],
            "ratios": self.ratios(),
            "vector": [asdict(m) | {"steps_per_s": m.steps_per_s} for m in self.vector],
            "load_average": self.load_average,
        }


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1m": _load_average(),
        "processor": _cpu_model() or platform.processor(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
    }


def _load_average() -> float | None:
    """Other work on the machine slows wall-clock figures down; it is recorded beside them."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


# ---- the loop --------------------------------------------------------------------------------


def _masked_picker(env: gym.Env) -> Callable[[Any, float], int]:
    def pick(obs, u: float) -> int:
        valid = obs["action_mask"].nonzero()[0]
        return int(valid[int(u * len(valid))])

    return pick


def _uniform_picker(env: gym.Env) -> Callable[[Any, float], int]:
    n = int(env.action_space.n)

    def pick(obs, u: float) -> int:
        return int(u * n)

    return pick


def time_env(
    env: gym.Env,
    pick: Callable[[Any, float], int],
    seconds: float,
    seed: int = 0,
    warmup: float = 0.2,
) -> tuple[int, int, float, float]:
    """Step `env` for about `seconds` (after `warmup`); returns (steps, episodes, wall seconds,
    CPU seconds)."""
    u = np.random.default_rng(seed).random(_TABLE).tolist()  # floats, no numpy scalars per step
    wrap = _TABLE - 1
    episode_seed = seed
    obs, _ = env.reset(seed=episode_seed)
    step = env.step

    def run(budget: float) -> tuple[int, int, float, float]:
        nonlocal obs, episode_seed
        steps = episodes = 0
        i = 0
        cpu_start = time.process_time()
        start = time.perf_counter()
        deadline = start + budget
        while True:
            for _ in range(_CHECK_EVERY):
                obs, _, terminated, truncated, _ = step(pick(obs, u[i]))
                i = (i + 1) & wrap
                if terminated or truncated:
                    episode_seed += 1
                    obs, _ = env.reset(seed=episode_seed)
                    episodes += 1
            steps += _CHECK_EVERY
            now = time.perf_counter()
            if now >= deadline:
                return steps, episodes, now - start, time.process_time() - cpu_start

    run(warmup)
    return run(seconds)


# ---- the envs --------------------------------------------------------------------------------


def memgym_ids(families: tuple[str, ...] = ("streaming",)) -> list[str]:
    import memgym.envs  # noqa: F401  (registers the envs)
    from memgym.envs.config import Level
    from memgym.envs.registration import FAMILIES, env_id

    return [env_id(task, Level(LEVEL)) for family in families for task in FAMILIES[family]]


def _reference_envs() -> tuple[list[tuple[str, str]], dict[str, str]]:
    """`[(suite, env id)]` of the references that import, and `{suite: why not}` for the rest."""
    available, missing = [], {}
    try:
        import popgym  # noqa: F401  (registers popgym-* ids)
        from popgym.envs.repeat_previous import RepeatPreviousEasy  # noqa: F401

        available.append(("popgym", POPGYM_ID))
    except Exception as e:  # noqa: BLE001  (any import failure means "not installed properly")
        missing["popgym"] = f"{type(e).__name__}: {e}"
    try:
        import minigrid  # noqa: F401  (registers MiniGrid-* ids)

        available.append(("minigrid", MINIGRID_ID))
    except Exception as e:  # noqa: BLE001
        missing["minigrid"] = f"{type(e).__name__}: {e}"
    return available, missing


def run_bench(
    seconds: float = 2.0, command: str = "memgym bench envs", log: Callable[[str], None] = print
) -> BenchResult:
    references, missing = _reference_envs()
    result = BenchResult(
        date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=command,
        seconds_per_measurement=seconds,
        machine=machine_info(),
        unavailable=missing,
    )
    for suite, why in missing.items():
        log(
            f"note: {suite} is not importable ({why}); measuring memgym without it. "
            "Install the optional extra: pip install -e '.[bench]'"
        )
    plan = [("memgym", eid, _masked_picker) for eid in memgym_ids()]
    plan += [(suite, eid, _uniform_picker) for suite, eid in references]
    for suite, eid, picker in plan:
        for mode in MODES:
            env = gym.make(eid)
            target = env if mode == "wrapped" else env.unwrapped
            steps, episodes, elapsed, cpu = time_env(target, picker(target), seconds)
            env.close()
            m = Measurement(eid, suite, mode, steps, episodes, elapsed, cpu)
            result.measurements.append(m)
            log(f"  {eid:<34} {mode:<9} {m.steps_per_s:>12,.0f} steps/s")
    log("vectorised:")
    run_vector_bench(result, seconds, references, log)
    return result


# ---- vectorised ------------------------------------------------------------------------------

VECTOR_SIZES = (1024, 4096)
SYNC_ENVS = 16
# Untimed vector steps first: past the first episode of (nearly) every env, so that autoresets,
# a large part of the real cost, are in the figure at their steady rate. (A Medium episode under
# random actions is ~200-600 steps; with every env starting at once, a short window would see
# none.)
VECTOR_WARMUP = 700


class RandomValidActions:
    """Uniformly random valid actions for a batch: the argmax of pre-drawn uniforms in (0, 1]
    times each row's action mask (i.i.d. uniforms, so the argmax is uniform over the valid
    actions), compiled: ~40 us at 4,096 envs x 33 actions, where numpy's multiply and argmax
    took ~220 us and the cumulative-sum pick before them more. A benchmark times the env, and
    the references' uniform actions cost nothing."""

    def __init__(self, num_envs: int, num_actions: int, seed: int = 0, tables: int = 8):
        rng = np.random.default_rng(seed)
        self._tables = 1.0 - rng.random((tables, num_envs, num_actions), dtype=np.float32)

    def __call__(self, mask: np.ndarray, i: int) -> np.ndarray:
        out = np.empty(len(mask), np.int64)
        _argmax_of_masked(self._tables[i % len(self._tables)], mask, out)
        return out


@njit(cache=True, nogil=True)
def _argmax_of_masked(u, mask, out) -> None:
    """`out[i] = argmax_a u[i, a] * mask[i, a]` (the first of equal maxima, as numpy's)."""
    for i in range(u.shape[0]):
        best, arg = np.float32(-1.0), 0
        for a in range(u.shape[1]):
            v = u[i, a] * np.float32(mask[i, a])
            if v > best:
                best, arg = v, a
        out[i] = arg


def time_vector_env(env, masked: bool, seconds: float, seed: int = 0,
                    warmup: int = VECTOR_WARMUP) -> tuple[int, float]:
    """Step a vector env for about `seconds` after `warmup` untimed steps; (vector steps,
    elapsed)."""
    N = env.num_envs
    n = int(env.single_action_space.n)
    uniform = (np.random.default_rng(seed).random((64, N)) * n).astype(np.int64)
    valid_pick = RandomValidActions(N, n, seed)
    obs, _ = env.reset(seed=seed)

    def pick(obs, i):
        return valid_pick(obs["action_mask"], i) if masked else uniform[i]

    for i in range(max(warmup, 1)):
        obs = env.step(pick(obs, i & 63))[0]
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(8):
            obs = env.step(pick(obs, steps & 63))[0]
            steps += 1
        now = time.perf_counter()
        if now >= deadline:
            return steps, now - start


def native_kind(eid: str) -> str:
    """How `_time_native` makes `eid`'s vector env: "native, views" when the env can hand out
    its observation buffers rather than copies (`copy=False`, as rollouts make it), else
    "native"."""
    return "native, views" if can_return_views(eid) else "native"


def _time_native(eid: str, num_envs: int, seconds: float) -> tuple[int, float]:
    views = {"copy": False} if can_return_views(eid) else {}
    env = gym.make_vec(eid, num_envs=num_envs, vectorization_mode="vector_entry_point", **views)
    try:
        return time_vector_env(env, True, seconds)
    finally:
        env.close()


def _in_fresh_process(fn, *args):
    """`fn(*args)` in a new interpreter. A vector measurement depended on what had run before it
    in the same process: ObjectRecall-Medium at 1024 envs gave 274k steps/s after the streaming
    vector envs had run, 409k-455k on its own (2026-12-02; not gc, page faults, imports or
    throttling, which were each ruled out). Each figure now comes from a process of its own."""
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def run_vector_bench(result: BenchResult, seconds: float, references, log) -> None:
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    for eid in memgym_ids(("streaming", "embodied")):
        for N in VECTOR_SIZES:
            steps, elapsed = _in_fresh_process(_time_native, eid, N, seconds)
            m = VectorMeasurement(eid, "memgym", native_kind(eid), N, steps, elapsed)
            result.vector.append(m)
            log(f"  {eid:<34} native N={N:<5} {m.steps_per_s:>12,.0f} steps/s")
    for suite, eid in references:
        env = SyncVectorEnv([lambda eid=eid: gym.make(eid) for _ in range(SYNC_ENVS)],
                            autoreset_mode=AutoresetMode.SAME_STEP)
        steps, elapsed = time_vector_env(env, False, seconds)
        env.close()
        m = VectorMeasurement(eid, suite, "SyncVectorEnv", SYNC_ENVS, steps, elapsed)
        result.vector.append(m)
        log(f"  {eid:<34} Sync N={SYNC_ENVS:<7} {m.steps_per_s:>12,.0f} steps/s")
    result.load_average = os.getloadavg()


def vector_table(result: BenchResult) -> str:
    refs = {m.suite: m.steps_per_s for m in result.vector if m.suite != "memgym"}
    header = ["env", "vector env", "envs", "env steps/s"] + [f"÷ {s} Sync" for s in refs]
    rows = [header, ["---", "---", "---:", "---:"] + ["---:"] * len(refs)]
    for m in result.vector:
        row = [f"`{m.env}`", m.kind, f"{m.num_envs:,}", f"{m.steps_per_s:,.0f}"]
        row += [f"{m.steps_per_s / r:.1f}×" if m.suite == "memgym" else "" for r in refs.values()]
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


# ---- the report ------------------------------------------------------------------------------


def table(result: BenchResult) -> str:
    """Markdown table: steps/s wrapped and unwrapped, and memgym's ratio to each reference."""
    refs = (("popgym", POPGYM_ID), ("minigrid", MINIGRID_ID))
    header = ["env", "steps/s (gym.make)", "steps/s (unwrapped)"]
    header += [f"÷ {s} ({mode})" for s, _ in refs for mode in ("wrapped", "unwrapped")]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1)]
    ratios = result.ratios()
    names = []
    for m in result.measurements:
        if m.env not in names:
            names.append(m.env)
    for name in names:
        row = [f"`{name}`"]
        for mode in MODES:
            r = result.rate(name, mode)
            row.append(f"{r:,.0f}" if r is not None else "n/a")
        for s, _ in refs:
            for mode in MODES:
                x = ratios.get(name, {}).get(mode, {}).get(s)
                row.append(f"{x:.2f}×" if x is not None else "")
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def summary(result: BenchResult) -> str:
    m = result.machine
    lines = [
        f"{result.date} · {m['cpu_count']} CPUs ({m['processor']}) · Python {m['python']} · "
        f"numpy {m['numpy']} · gymnasium {m['gymnasium']} · load average {m['load_average_1m']} "
        "at the start (wall-clock figures; other work on the machine slows them)",
        f"command: {result.command}",
        "",
        table(result),
    ]
    for suite, why in result.unavailable.items():
        lines.append(f"\n{suite}: not measured ({why}); install with pip install -e '.[bench]'")
    if result.vector:
        load = ", ".join(f"{x:.2f}" for x in result.load_average or ())
        lines += ["", f"vectorised (load average {load}):", "", vector_table(result)]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m memgym.benchmarks.envs_speed [seconds]
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    print(summary(run_bench(secs, command=f"python -m memgym.benchmarks.envs_speed {secs}")))
