"""Run a command on this machine slowed down to a slower host's speed, to measure a bar there directly.

    sudo .venv/bin/python benchmarks/slow_host.py --probe 0.30 [--kernels avx2] -- make test

A host's speed is the speed probe: seconds per default training step, one thread
(`benchmarks/reproduce_default.py --speed-probe`). This script takes the same share of every CPU
away from everything else: one real-time (SCHED_FIFO) process per CPU spins for part of every
10 ms, all of them at the same moments, so that no job escapes to a CPU that is free just then.
The share is calibrated until the probe's step takes ``--probe`` seconds of wall time. Then the
command runs, and the script prints one JSON line: the command's wall time, the share taken, and the
probe's wall seconds per step before and after the command (also written to ``--output``).

``--kernels avx2`` runs the probe and the command with torch's and NumPy's kernels at AVX2 at most
(the variables of `make ... CPU_KERNELS=avx2`), as on the AVX2-only hosts that are slow: on an
AVX-512 host the probe speeds up more than the rest of the work does, so slowing the native probe
to 0.30 would slow the rest further than a slow host does.

What it does not imitate: a slower host is slower in every instruction, while here each CPU runs at
full speed 3 to 7 ms in 10 and not at all for the rest (a job's short waits on disk or on another
process are not slowed). Real-time scheduling needs root (or CAP_SYS_NICE).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from benchmarks.reproduce_default import speed_probe  # noqa: E402
from pfami.reproduction import LOWERED_KERNELS  # noqa: E402

PERIOD_NS = 10_000_000  # short enough that a job sees a steady share, long enough for few switches
MAX_SHARE = 0.9  # the kernel lets real-time tasks have at most 95% of a CPU (sched_rt_runtime_us)


def hog(cpu: int, busy_ns: int) -> None:
    """Spin on ``cpu`` for ``busy_ns`` at the start of every period, at top real-time priority, until the
    parent process goes away."""
    parent = os.getppid()
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_get_priority_max(os.SCHED_FIFO)))
    except PermissionError:
        sys.exit(3)  # the parent says why, in one line
    start = (time.monotonic_ns() // PERIOD_NS + 1) * PERIOD_NS
    while os.getppid() == parent:
        time.sleep(max(0, start - time.monotonic_ns()) / 1e9)
        while time.monotonic_ns() < start + busy_ns:
            pass
        start += PERIOD_NS


class Hogs:
    """One hog per CPU, taking ``share`` of each; ``stop()`` ends them."""

    def __init__(self, share: float):
        busy_ns = str(round(share * PERIOD_NS))
        self.processes = [subprocess.Popen([sys.executable, __file__, "--hog", str(cpu), busy_ns])
                          for cpu in sorted(os.sched_getaffinity(0))]
        time.sleep(0.5)
        if failed := [process for process in self.processes if process.poll() is not None]:
            self.stop()
            sys.exit(f"slow_host: a hog could not start (exit status {failed[0].returncode}): real-time "
                     "scheduling needs root or CAP_SYS_NICE; run with sudo")

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def calibrated_share(target: float, environment: dict, rounds: int) -> tuple[float, list[float]]:
    """The share of each CPU to take so that the probe reads ``target`` wall seconds per step, and the
    probe readings of the last share tried. A job that gets a fraction (1 - share) of a CPU takes
    1 / (1 - share) times as long, so each round corrects the share by the ratio it missed by."""
    unslowed = statistics.median(speed_probe(wall_clock=True, environment=environment) for _ in range(2))
    if unslowed >= target:
        sys.exit(f"slow_host: this machine's probe reads {unslowed:.3f} s per step already, not faster than "
                 f"--probe {target}; nothing to slow down")
    share = 1 - unslowed / target
    for _ in range(rounds):
        hogs = Hogs(share)
        try:
            readings = [speed_probe(wall_clock=True, environment=environment) for _ in range(2)]
        finally:
            hogs.stop()
        share = min(MAX_SHARE, 1 - (1 - share) * statistics.median(readings) / target)
    return share, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", type=float, default=0.30, help="seconds per default training step to slow to")
    parser.add_argument("--kernels", choices=sorted(level.lower() for level in LOWERED_KERNELS),
                        help="torch's and NumPy's kernels at this level at most, for the probe and the command")
    parser.add_argument("--rounds", type=int, default=2, help="calibration rounds (two probes each)")
    parser.add_argument("--output", help="JSON file to write the record to as well")
    parser.add_argument("--hog", nargs=2, type=int, help=argparse.SUPPRESS)  # internal: CPU, busy nanoseconds
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    if args.hog:
        hog(*args.hog)
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: calibrate at least once (1 or more)")
    environment = {**os.environ, **(LOWERED_KERNELS[args.kernels.upper()] if args.kernels else {})}

    share, calibration = calibrated_share(args.probe, environment, args.rounds)
    hogs = Hogs(share)
    try:
        before = [speed_probe(wall_clock=True, environment=environment) for _ in range(2)]
        start = time.perf_counter()
        status = subprocess.run(command, env=environment).returncode
        wall = time.perf_counter() - start
        after = [speed_probe(wall_clock=True, environment=environment) for _ in range(2)]
    finally:
        hogs.stop()
    record = {"command": " ".join(command), "exit_status": status, "wall_seconds": round(wall, 1),
              "target_probe": args.probe, "kernels": args.kernels or "native", "share_taken": round(share, 3),
              "probe_wall_calibration": calibration, "probe_wall_before": before, "probe_wall_after": after,
              "cpus": len(os.sched_getaffinity(0)), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(record))
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
    sys.exit(status)


if __name__ == "__main__":
    main()
