"""`memgym launch`: submit `memgym train CONFIG ...` as a Ray Job.

The project folder is the job's `working_dir` (uploaded by Ray, without the venv, runs, git
history and caches), so the config files travel with the job. The entrypoint runs this very
interpreter (`sys.executable -m memgym.cli train ...`): right for a cluster on this machine, where
the job shares our venv. With `PYTHONSAFEPATH` set the uploaded copy of `memgym/` does not shadow
the installed package, so the job never mixes two versions of the code. On a real cluster the
nodes have their own Python: install memgym there (an image, or `runtime_env` `pip`), and point
`--runs` at storage the nodes share.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path

# Left out of the uploaded working_dir (gitignore syntax): big, local or regenerated.
EXCLUDES = [".venv", "venv", "runs", ".git", "*.egg-info", "__pycache__", ".pytest_cache",
            ".hypothesis", ".mypy_cache", ".ruff_cache", "build", "dist"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class LaunchError(Exception):
    """The job could not be submitted or followed; the message says why."""


def project_root() -> Path:
    """The folder that holds `pyproject.toml` and `memgym/`."""
    import memgym

    return Path(memgym.__file__).resolve().parent.parent


def config_in_project(config: str | Path, root: Path) -> str:
    """The config's path relative to the project root, as the job will see it."""
    path = Path(config).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise LaunchError(
            f"{config} is outside the project folder {root}, which is what the job receives: "
            f"copy it into {root / 'configs'} and launch that"
        ) from None


def entrypoint(config_rel: str, overrides: list[str], name: str, runs: str) -> str:
    argv = [sys.executable, "-m", "memgym.cli", "train", config_rel, *overrides,
            "--name", name, "--runs", runs, "--no-progress"]
    return shlex.join(argv)


def runtime_env(root: Path) -> dict:
    return {
        "working_dir": str(root),
        "excludes": EXCLUDES,
        "env_vars": {"PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"},
    }


def client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:  # noqa: BLE001  (connection errors come in several types)
        raise LaunchError(
            f"cannot reach a Ray dashboard at {address} ({type(e).__name__}: {e}); start one with "
            "`ray start --head --dashboard-host=127.0.0.1` or check --address"
        ) from None


def submit(address: str, config: str | Path, overrides: list[str], name: str, runs: str) -> tuple:
    """Submit the job; returns `(client, job_id, entrypoint)`."""
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)  # not a line per packaged file
    root = project_root()
    cmd = entrypoint(config_in_project(config, root), overrides, name, runs)
    jobs = client(address)
    try:
        job_id = jobs.submit_job(entrypoint=cmd, runtime_env=runtime_env(root),
                                 submission_id=f"memgym-{name}",
                                 metadata={"memgym_run": name})
    except Exception as e:  # noqa: BLE001  (RuntimeError / HTTP errors from the dashboard)
        raise LaunchError(f"Ray refused the job: {e}") from None
    return jobs, job_id, cmd


def follow(jobs, job_id: str, out=None) -> str:
    """Print the job's logs as they come; returns its final status."""
    out = out or sys.stdout

    async def tail() -> None:
        async for lines in jobs.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    try:
        asyncio.run(tail())
    except Exception:  # noqa: BLE001  (the log stream can drop; the status below still holds)
        pass
    while (status := str(jobs.get_job_status(job_id).value)) not in TERMINAL:
        time.sleep(1.0)
    return status
