"""Start-up benchmark: wall time of short ``peersim`` commands, end to end.

Times, each in a fresh process and ``--repeat`` times (default 3; the median
and the fastest are reported):

- ``peersim --help``
- ``peersim schema``
- ``peersim validate scenarios/enrich_trial.toml``
- ``peersim run -n 10`` (the ENRICH trial, 10 replicates in this process: the
  default run), into a temporary folder

each in two modes, so that the figures do not depend on whether the environment
happens to hold compiled bytecode:

- ``no_bytecode``: ``PYTHONDONTWRITEBYTECODE=1`` and ``PYTHONPYCACHEPREFIX`` an
  empty folder, so no ``.pyc`` is read or written and every module is compiled
  from source each time (a container image whose environment was installed
  without bytecode, with that variable set, as on this project's machines);
- ``bytecode``: ``PYTHONPYCACHEPREFIX`` a fresh folder that one untimed run
  fills, so every later run reads compiled bytecode (an environment installed
  with ``UV_COMPILE_BYTECODE=1 uv sync``, or ``[tool.uv] compile-bytecode``).

The command is the environment's ``peersim`` console script (next to this
interpreter), not ``uv run peersim``, whose own start-up (about 0.05-0.1 s) is
not peersim's. Prints one JSON line: per mode and command the median and
fastest wall time in seconds, plus the 1-minute load average before and after
(other work on the machine skews timings). ``uv run python
benchmarks/startup_bench.py`` from the repository root; ``--modes bytecode``
or ``--commands validate`` to time fewer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "enrich_trial.toml"
COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "schema": ["schema"],
    "validate": ["validate", str(SCENARIO)],
    "run_n10": ["run", "-n", "10"],  # --out is added per run
}
MODES = ("no_bytecode", "bytecode")


def peersim_script() -> list[str]:
    """The environment's console script, or ``python -m analysis.cli`` without one."""
    script = Path(sys.executable).with_name("peersim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "analysis.cli"]


def mode_env(mode: str, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    if mode == "no_bytecode":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_once(command: str, env: dict[str, str], scratch: Path) -> float:
    args = list(COMMANDS[command])
    if command == "run_n10":
        out = Path(tempfile.mkdtemp(prefix="run-", dir=scratch)) / "out"
        args += ["--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    done = subprocess.run(
        [*peersim_script(), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"peersim {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    args = parser.parse_args()
    result: dict[str, object] = {"load_average_1min_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        scratch = Path(tmp)
        for mode in args.modes:
            cache = Path(tempfile.mkdtemp(prefix=f"pycache-{mode}-", dir=scratch))
            env = mode_env(mode, cache)
            timings: dict[str, dict[str, float]] = {}
            for command in args.commands:
                if mode == "bytecode":
                    time_once(command, env, scratch)  # untimed: fills the bytecode cache
                times = [time_once(command, env, scratch) for _ in range(args.repeat)]
                timings[command] = {
                    "median_s": round(statistics.median(times), 2),
                    "fastest_s": round(min(times), 2),
                }
            result[mode] = timings
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
