"""Load time of the code location and of `qlib-assets --help`, against the same commands in
another checkout (default /work/main) and a bare interpreter, each in fresh processes.

    python benchmarks/load_time.py [--reference PATH] [--repeat N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import qlib_assets.definitions": ["-W", "ignore", "-c", "import qlib_assets.definitions"],
    "qlib-assets --help": ["-m", "qlib_assets.cli", "--help"],
}


def _seconds(checkout: Path, args: list[str], repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "QLIB_ASSETS_HOME": "/tmp/load_time_home"}
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, cwd=checkout, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", type=Path, default=Path("/work/main"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.repeat} fresh processes")
    print(f"{'command':34} {'this':>8} {'reference':>10} {'ratio':>7}")
    for label, command in COMMANDS.items():
        mine = _seconds(HERE, command, args.repeat)
        ref = _seconds(args.reference, command, args.repeat)
        print(f"{label:34} {mine:7.2f}s {ref:9.2f}s {ref / mine:6.1f}x")


if __name__ == "__main__":
    main()
