"""`memgym train` stopped by SIGTERM/SIGINT checkpoints and exits; `--resume` finishes the run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """\
env: memgym/Conflict-Easy-v0
num_envs: 4
rollout_steps: 32
minibatches: 2
epochs: 1
total_steps: 3200
eval_every: 1000
eval_episodes: 2
final_eval_episodes: 2
checkpoint_every: 1000
"""


@pytest.mark.slow  # two subprocess runs each; resume == uninterrupted is in the default run
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_then_resume(tmp_path: Path, sig):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    cmd = [sys.executable, "-m", "memgym.cli", "train", str(cfg), "--name", "r", "--runs",
           str(tmp_path), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in out
    stopped_at = len(metrics.read_text().splitlines())
    assert stopped_at < 25  # 3200 steps / 128 per iteration: it really stopped early
    assert (tmp_path / "r" / "checkpoints" / "latest.pt").exists()

    done = subprocess.run([sys.executable, "-m", "memgym.cli", "train", "--resume",
                           str(tmp_path / "r"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(1, 26))
    assert records[-1]["step"] == 3200
    assert (tmp_path / "r" / "eval.json").exists()
