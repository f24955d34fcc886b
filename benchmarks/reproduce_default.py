"""Measure the full default reproduction: wall time and peak memory of the whole process tree.

    .venv/bin/python benchmarks/reproduce_default.py [--cores 2] [--configfile config/config.yaml]

Runs `snakemake --cores N` from scratch in a temporary copy of the project (your results/ are
untouched; `--in-place` instead reruns everything in the project itself, `--forceall`), samples the summed resident memory of Snakemake and every job it starts, and prints
one JSON line (also written to benchmarks/results/reproduce_default.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parents[1]


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="all")
    parser.add_argument("--configfile", default=str(PROJECT / "config" / "config.yaml"))
    parser.add_argument("--in-place", action="store_true", help="rerun everything in this project's results/")
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "reproduce_default.json"))
    args = parser.parse_args()

    if args.in_place:
        workdir, extra = PROJECT, ["--forceall", "--configfile", args.configfile]
    else:
        workdir, extra = Path(tempfile.mkdtemp(prefix="pfami-benchmark-")), []
        for name in ("Snakefile", "workflow", "scripts", "config"):
            source = PROJECT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, workdir / name)
        shutil.copy(args.configfile, workdir / "config" / "config.yaml")

    start, peak = time.monotonic(), 0
    snakemake = psutil.Popen([sys.executable, "-m", "snakemake", "--cores", args.cores, "--quiet", *extra], cwd=workdir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while snakemake.poll() is None:
        peak = max(peak, tree_rss(snakemake))
        time.sleep(0.2)
    wall = time.monotonic() - start
    if snakemake.returncode != 0:
        sys.exit(f"snakemake failed (exit {snakemake.returncode}); logs under {workdir}/results\n{snakemake.stderr.read()[-2000:]}")

    metrics = {}
    for path in sorted(workdir.glob("results/*/metrics.json")):
        content = json.loads(path.read_text())
        metrics[content["experiment"]] = {attack: round(result["auc"], 4) for attack, result in content["attacks"].items()}
    record = {"wall_seconds": round(wall, 1), "peak_rss_gb": round(peak / 1e9, 3), "cores": args.cores,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
              "config": Path(args.configfile).name, "auc": metrics}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))
    if not args.in_place:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
