"""`memgym sweep` (Ray Tune) and `memgym launch` (Ray Jobs): argument checking always; a tiny
sweep and a job on a local `ray start --head` (started and stopped here) behind `slow`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memgym.cli import main
from memgym.envs.config import ConfigError
from memgym.launch import EXCLUDES, config_in_project, entrypoint, project_root, runtime_env
from memgym.trainers.sweep import ParamSpec, parse_param, trial_index

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "ppo_conflict.yaml")
TINY = ["env=memgym/Conflict-Easy-v0", "num_envs=4", "rollout_steps=64", "total_steps=1024",
        "eval_every=2", "eval_episodes=4", "final_eval_episodes=8", "time_limit_minutes=0"]


@pytest.fixture(autouse=True)
def _loopback_ray(monkeypatch):
    # Not RAY_AUTH_MODE: changing it between two Ray sessions of one process (other tests'
    # ray.init() and the sweep's) makes the second session's actors die before they start.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)


# ---- --param syntax -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("lr=loguniform:1e-4:1e-3", ParamSpec("lr", "loguniform", (1e-4, 1e-3))),
    ("ent_coef=uniform:0:0.02", ParamSpec("ent_coef", "uniform", (0.0, 0.02))),
    ("epochs=randint:2:8", ParamSpec("epochs", "randint", (2, 8))),
    ("policy=choice:slot_attention,mlp", ParamSpec("policy", "choice", ("slot_attention", "mlp"))),
    ("hidden=choice:32,64", ParamSpec("hidden", "choice", (32, 64))),
    ("env_kwargs.capacity=choice:4,8", ParamSpec("env_kwargs.capacity", "choice", (4, 8))),
])
def test_parse_param(text, expected):
    assert parse_param(text) == expected


@pytest.mark.parametrize("text, message", [
    ("lr", "KEY=KIND:ARGS"),
    ("lr=1e-3", "KEY=KIND:ARGS"),
    ("lr=gauss:0:1", "unknown kind 'gauss'"),
    ("lrr=uniform:0:1", "did you mean 'lr'"),
    ("lr=loguniform:1e-4", "needs two bounds"),
    ("lr=loguniform:0:1e-3", "LOW > 0"),
    ("lr=uniform:1e-3:1e-4", "LOW must be below HIGH"),
    ("lr=uniform:a:b", "must be numbers"),
    ("epochs=randint:2:3.5", "must be numbers"),
    ("hidden=choice:", "at least one value"),
])
def test_parse_param_errors_say_what_to_write(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_param(text)


def test_trial_index():
    assert trial_index("3ce00_00000") == "0"
    assert trial_index("3ce00_00017") == "17"
    assert trial_index("odd-id") == "odd-id"


@pytest.mark.parametrize("argv, message", [
    (["--param", "lr=1e-3"], "KEY=KIND:ARGS"),
    (["--param", "lrr=uniform:0:1"], "did you mean 'lr'"),
    (["--param", "hidden=uniform:16:64"], "hidden is an integer: use hidden=randint"),
    (["--param", "minibatches=choice:3,4"], "not divisible by minibatches=3"),
    (["--param", "env_kwargs.length=choice:5"], "length"),
    (["--param", "lr=uniform:1e-4:1e-3", "--param", "lr=uniform:1e-4:1e-3"], "given twice"),
    (["--param", "lr=uniform:1e-4:1e-3", "--samples", "0"], "--samples must be >= 1"),
    (["foo=1", "--param", "lr=uniform:1e-4:1e-3"], "unknown config key 'foo'"),
])
def test_sweep_cli_errors_exit_2(argv, message, tmp_path, capsys):
    assert main(["sweep", CONFIG, *argv, "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing started


def test_sweep_cli_needs_a_param(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", CONFIG])
    assert exit_info.value.code == 2
    assert "--param" in capsys.readouterr().err


# ---- launch -------------------------------------------------------------------------------------


def test_launch_job_is_this_interpreter_on_the_project_folder(tmp_path):
    root = project_root()
    assert (root / "pyproject.toml").is_file() and root == ROOT
    cmd = shlex.split(entrypoint(config_in_project(CONFIG, root), ["lr=0.001"], "n1", "/abs/runs"))
    assert cmd[:5] == [sys.executable, "-m", "memgym.cli", "train", "configs/ppo_conflict.yaml"]
    assert cmd[5:] == ["lr=0.001", "--name", "n1", "--runs", "/abs/runs", "--no-progress"]
    env = runtime_env(root)
    assert env["working_dir"] == str(root)
    assert {".venv", "runs", ".git"} <= set(env["excludes"]) and EXCLUDES == env["excludes"]
    # The uploaded copy must not shadow the installed package (one version of the code per job).
    assert env["env_vars"]["PYTHONSAFEPATH"] == "1"


@pytest.mark.parametrize("argv, message", [
    ([CONFIG], "launch needs --address"),
    ([CONFIG, "--address", "127.0.0.1:8265"], "must be the dashboard URL"),
    ([CONFIG, "foo=1", "--address", "http://127.0.0.1:8265"], "unknown config key 'foo'"),
    ([str(ROOT / "configs" / "nope.yaml"), "--address", "http://127.0.0.1:8265"], "not found"),
])
def test_launch_cli_errors_exit_2(argv, message, capsys):
    assert main(["launch", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_launch_config_outside_the_project_exits_2(tmp_path, capsys):
    outside = tmp_path / "mine.yaml"
    outside.write_text(Path(CONFIG).read_text())
    assert main(["launch", str(outside), "--address", "http://127.0.0.1:8265"]) == 2
    assert "outside the project folder" in capsys.readouterr().err


def test_launch_to_no_cluster_exits_2(capsys):
    t0 = time.perf_counter()
    assert main(["launch", CONFIG, "--address", f"http://127.0.0.1:{_free_port()}"]) == 2
    assert "cannot reach a Ray dashboard" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 30


# ---- slow: a real sweep, a real job ---------------------------------------------------------------


@pytest.mark.slow
def test_tiny_sweep_writes_a_run_per_trial_and_prints_the_best(tmp_path, capsys):
    code = main(["sweep", CONFIG, *TINY, "--param", "lr=loguniform:1e-4:1e-3",
                 "--param", "ent_coef=choice:0.0,0.01", "--samples", "2", "--name", "tiny",
                 "--runs", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    root = tmp_path / "tiny"
    summary = json.loads((root / "sweep.json").read_text())
    assert len(summary["trials"]) == 2 and summary["best"] is not None
    for i in range(2):
        run = root / f"trial_{i}"
        assert (run / "eval.json").is_file() and (run / "metrics.jsonl").is_file()
        cfg = (run / "config.yaml").read_text()
        assert "Conflict-Easy" in cfg
    lrs = {t["params"]["lr"] for t in summary["trials"]}
    assert len(lrs) == 2 and all(1e-4 <= lr <= 1e-3 for lr in lrs)
    best = summary["best"]
    assert best["accuracy"] == max(t["accuracy"] for t in summary["trials"])
    assert f"best: {best['trial']}" in out and "memgym train" in out
    # Tune saw a report per periodic evaluation (2 of them) plus the final one.
    progress = list((root / "tune").glob("*/progress.csv"))
    assert len(progress) == 2
    assert all(len(p.read_text().strip().splitlines()) == 1 + 3 for p in progress)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_of(marker: str) -> set[int]:
    """Pids whose command line holds `marker` (our Ray temp dir), and all their descendants."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            table[int(entry)] = (ppid, cmd)
    found = {pid for pid, (_, cmd) in table.items() if marker in cmd} - {os.getpid()}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _stop(pids: set[int]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        pids = {p for p in pids if _alive(p)}
        if not pids:
            return


@pytest.fixture
def local_ray_head():
    """A one-CPU Ray head on 127.0.0.1 with its own temp dir, stopped by the pids it started
    (`ray stop` would stop every Ray of this user, other tests' included)."""
    temp_dir = Path("/tmp") / f"mg_ray_{os.getpid()}_{_free_port()}"  # short: socket paths
    dashboard = _free_port()
    ray_bin = Path(sys.executable).parent / "ray"
    cmd = [str(ray_bin), "start", "--head", f"--port={_free_port()}", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
           f"--dashboard-agent-listen-port={_free_port()}", "--include-dashboard=true",
           "--num-cpus=1", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=120)
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        _stop(_processes_of(str(temp_dir)))
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


@pytest.mark.slow
def test_launch_runs_memgym_train_as_a_ray_job(local_ray_head, tmp_path, capsys):
    code = main(["launch", "configs/ppo_conflict.yaml", *TINY, "--address", local_ray_head,
                 "--name", "job1", "--runs", str(tmp_path), "--wait"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "submitted Ray job memgym-job1" in out and "ray job logs" in out
    assert "training ppo on memgym/Conflict-Easy-v0" in out  # the job's own log, tailed
    assert "memgym-job1: SUCCEEDED" in out
    run = tmp_path / "job1"
    assert (run / "eval.json").is_file() and (run / "checkpoints" / "latest.pt").is_file()
    # The same name again is refused by Ray, and we say so with exit 2.
    assert main(["launch", CONFIG, *TINY, "--address", local_ray_head, "--name", "job1",
                 "--runs", str(tmp_path)]) == 2
    assert "Ray refused the job" in capsys.readouterr().err
