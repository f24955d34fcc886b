"""Time the privacy study (`snakemake --cores N privacy`) in this project's results/, from nothing:
wall time, CPU seconds of every job, peak memory, jobs, and the speed probe of the host.

Run it under `flock /work/heavy.lock` (or alone) for a figure to quote:
    .venv/bin/python benchmarks/privacy_study.py --cores 2
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_default import (PROJECT, core_count, idle_core_seconds, job_timeline, speed_probe,  # noqa: E402
                               timed_snakemake)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="2")
    parser.add_argument("--base", default="digits_ddpm", help="the study's base experiment (its folder is cleared)")
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "privacy_study.json"))
    args = parser.parse_args()
    shutil.rmtree(PROJECT / "results" / "privacy" / args.base, ignore_errors=True)
    since = time.time() - 1
    wall, peak, cpu = timed_snakemake(PROJECT, ["--cores", str(args.cores), "privacy"])
    timeline = job_timeline(PROJECT, since)
    result = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(peak / 1e9, 2),
              "cores": args.cores, "probe_s_per_step": round(speed_probe(), 3), "jobs": len(timeline),
              "idle_core_seconds": round(idle_core_seconds(timeline, core_count(args.cores))), "timeline": timeline}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "timeline"}))


if __name__ == "__main__":
    main()
