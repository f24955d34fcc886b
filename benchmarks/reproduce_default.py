"""Measure the full default reproduction, or its ablations: wall time and peak memory of the process tree.

    .venv/bin/python benchmarks/reproduce_default.py [--cores 2] [--configfile config/config.yaml]
    .venv/bin/python benchmarks/reproduce_default.py --cores 2 --ablations [--in-place]

Runs `snakemake --cores N` from scratch in a temporary copy of the project (your results/ are
untouched; `--in-place` instead reruns everything in the project itself, `--forceall`), samples
the summed resident memory of Snakemake and every job it starts, counts their CPU seconds, and
prints one JSON line (also written to benchmarks/results/reproduce_default.json). Before the run it
measures the machine's speed (CPU seconds per default training step, `--speed-probe`): this VM's
speed varies, and two runs' wall times compare only at similar probe values.

`--ablations` times `snakemake --cores N ablations` after a complete main run instead: the main
run is completed first (untimed; nothing runs where it is already complete), then every rule of
workflow/rules/ablations.smk is forced, so the figure is the cost of the ablations alone. It
refuses to time anything if the plan would rerun a main-run job. Written to
benchmarks/results/ablations_default.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def children_cpu_seconds() -> float:
    """User + system CPU time of every finished descendant this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_snakemake(workdir: Path, arguments: list[str]) -> tuple[float, int, float]:
    """Run Snakemake to the end: its wall time in seconds, the peak summed RSS in bytes, and the CPU
    seconds of Snakemake and every job (on N cores, wall time can not beat CPU seconds / N)."""
    start, peak, cpu_before = time.monotonic(), 0, children_cpu_seconds()
    # Snakemake's log goes to a file, not a pipe: a pipe nobody reads while it runs fills up (64 KiB,
    # about 60 jobs' worth) and blocks Snakemake for good.
    with tempfile.TemporaryFile("w+") as log:
        snakemake = psutil.Popen([*SNAKEMAKE, *arguments], cwd=workdir, stdout=subprocess.DEVNULL, stderr=log,
                                 text=True)
        while snakemake.poll() is None:
            peak = max(peak, tree_rss(snakemake))
            time.sleep(0.2)
        if snakemake.returncode != 0:
            log.seek(0)
            sys.exit(f"snakemake failed (exit {snakemake.returncode}); logs under {workdir}/results\n"
                     f"{log.read()[-2000:]}")
    return time.monotonic() - start, peak, children_cpu_seconds() - cpu_before


def training_step_seconds(steps: int = 20, clock=time.process_time) -> float:
    """CPU seconds per training step of the default U-Net (batch 64, one thread), measured here
    (``clock=time.perf_counter``: wall seconds, what a machine slowed by benchmarks/slow_host.py shows).

    The machine's speed varies from day to day; wall times of two runs compare only at similar
    probe values. Run in its own process (``--speed-probe``) so that it sees no warm caches."""
    import torch

    from pfami.models.ddpm import build_scheduler, build_unet, denoising_step_loss

    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = build_unet(16, 1, [16, 32, 64], 1, [])
    step_loss = denoising_step_loss(build_scheduler(1000, 1e-4, 0.02))
    optimiser = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    images, generator = torch.rand(200, 1, 16, 16) * 2 - 1, torch.Generator().manual_seed(0)

    def train(count: int) -> None:
        for _ in range(count):
            loss = step_loss(unet, images[torch.randint(0, len(images), (64,), generator=generator)], generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

    train(3)  # first steps allocate
    start = clock()
    train(steps)
    return (clock() - start) / steps


def job_timeline(workdir: Path, since: float) -> list[dict]:
    """[{rule, jobid, start, end}] in seconds from the first job's start, read off the Snakemake log of the
    run that began at ``since`` (the log stamps whole seconds): where the two cores sat idle."""
    logs = [path for path in (workdir / ".snakemake" / "log").glob("*.snakemake.log") if path.stat().st_mtime >= since]
    if not logs:
        return []
    stamp, started, jobs = None, {}, []
    lines = max(logs, key=lambda path: path.stat().st_mtime).read_text().splitlines()
    for index, line in enumerate(lines):
        if re.fullmatch(r"\[\w{3} \w{3} +\d+ [\d:]{8} \d{4}\]", line):
            stamp = time.mktime(time.strptime(line[1:-1], "%a %b %d %H:%M:%S %Y"))
        elif re.match(r"(local)?rule \w+:$", line):
            rule = line.split()[-1][:-1]
            block = lines[index + 1:next((end for end in range(index + 1, len(lines)) if not lines[end].startswith(" ")),
                                         len(lines))]
            fields = dict(entry.strip().split(": ", 1) for entry in block if ": " in entry)
            started[fields["jobid"]] = (f"{rule} {fields.get('wildcards', '')}".strip(), stamp)
        elif match := re.match(r"Finished jobid: (\d+)", line):
            rule, start = started.pop(match[1])
            jobs.append({"rule": rule, "jobid": int(match[1]), "start": start, "end": stamp})
    origin = min((job["start"] for job in jobs), default=0)
    return [{**job, "start": job["start"] - origin, "end": job["end"] - origin} for job in jobs]


def idle_core_seconds(timeline: list[dict], cores: int) -> float:
    """Core-seconds with no job on them, between the first job's start and the last one's end."""
    if not timeline:
        return 0.0
    end = max(job["end"] for job in timeline)
    return sum(max(0, cores - sum(job["start"] <= second < job["end"] for job in timeline)) for second in range(int(end)))


def core_count(cores: str) -> int:
    """The number of cores that Snakemake's ``--cores`` value ("all" or N) gives it."""
    return os.cpu_count() if cores == "all" else int(cores)


def speed_probe(wall_clock: bool = False, environment: dict | None = None) -> float:
    """The probe (``training_step_seconds``) in its own process: CPU seconds per step, or wall seconds."""
    command = [sys.executable, __file__, "--speed-probe", *(["--wall-clock"] if wall_clock else [])]
    probe = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT, env=environment)
    return round(float(probe.stdout.strip().splitlines()[-1]), 4)


def ablation_rules() -> list[str]:
    """Every rule declared in workflow/rules/ablations.smk (`rule NAME:` and `use rule ... as NAME`)."""
    text = (PROJECT / "workflow" / "rules" / "ablations.smk").read_text()
    return re.findall(r"^(?:rule|use rule \w+ as) (\w+)", text, flags=re.MULTILINE)


def planned_jobs(workdir: Path, arguments: list[str]) -> dict[str, int]:
    """{rule: job count} of what Snakemake would run (a dry run's job table)."""
    shown = [argument for argument in arguments if argument != "--quiet"]  # --quiet hides the job table
    plan = subprocess.run([*SNAKEMAKE, "-n", *shown], cwd=workdir, capture_output=True, text=True, check=True)
    counts = {}
    for line in (plan.stdout + plan.stderr).split("Job stats:", 1)[-1].splitlines():
        fields = line.split()
        if fields[:1] == ["total"]:
            break
        if len(fields) == 2 and fields[1].isdigit():
            counts[fields[0]] = int(fields[1])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="all")
    parser.add_argument("--configfile", default=str(PROJECT / "config" / "config.yaml"))
    parser.add_argument("--in-place", action="store_true", help="rerun in this project's results/")
    parser.add_argument("--ablations", action="store_true", help="time the ablation target after the main run")
    parser.add_argument("--output", help="JSON to write (default: benchmarks/results/{reproduce,ablations}_default.json)")
    parser.add_argument("--speed-probe", action="store_true", help="only print CPU seconds per default training step")
    parser.add_argument("--wall-clock", action="store_true", help="with --speed-probe: wall seconds instead")
    args = parser.parse_args()
    if args.speed_probe:
        print(training_step_seconds(clock=time.perf_counter if args.wall_clock else time.process_time))
        return
    output = Path(args.output or PROJECT / "benchmarks" / "results"
                  / ("ablations_default.json" if args.ablations else "reproduce_default.json"))

    if args.in_place:
        workdir, configured = PROJECT, ["--configfile", args.configfile]
    else:
        workdir, configured = Path(tempfile.mkdtemp(prefix="pfami-benchmark-")), []
        for name in ("Snakefile", "workflow", "scripts", "config"):
            source = PROJECT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, workdir / name)
        shutil.copy(args.configfile, workdir / "config" / "config.yaml")

    cores = ["--cores", args.cores, *configured]  # not --quiet: the log keeps each job's start and end
    if args.ablations:
        timed_snakemake(workdir, cores)  # completes the main run; untimed
        arguments = [*cores, "--forcerun", *ablation_rules(), "--", "ablations"]
        jobs = planned_jobs(workdir, arguments)
        main_run_jobs = set(jobs) - set(ablation_rules())
        if main_run_jobs:
            sys.exit(f"the ablation plan would rerun main-run jobs {sorted(main_run_jobs)}: finish the main run first")
    else:
        arguments = [*cores, "--forceall"] if args.in_place else cores
        jobs = planned_jobs(workdir, arguments)
    step_seconds = speed_probe()
    since = time.time() - 1
    wall, peak, cpu = timed_snakemake(workdir, arguments)
    timeline = job_timeline(workdir, since)

    metrics = {}
    for path in sorted(workdir.glob("results/*/metrics.json")):
        content = json.loads(path.read_text())
        metrics[content["experiment"]] = {attack: round(result["auc"], 4) for attack, result in content["attacks"].items()}
    record = {"wall_seconds": round(wall, 1), "peak_rss_gb": round(peak / 1e9, 3), "cpu_seconds": round(cpu),
              "training_step_seconds": step_seconds, "cores": args.cores,
              "jobs": sum(jobs.values()), "jobs_per_rule": jobs,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
              "config": Path(args.configfile).name, "target": "ablations" if args.ablations else "all", "auc": metrics,
              "idle_core_seconds": round(idle_core_seconds(timeline, core_count(args.cores))),
              "timeline": timeline}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({key: value for key, value in record.items() if key != "timeline"}))
    # Only the temporary copy this script made is removed, never the project.
    if not args.in_place and workdir != PROJECT and workdir.name.startswith("pfami-benchmark-"):
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
