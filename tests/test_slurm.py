"""The tiny workflow on a real (throwaway, single-node) SLURM cluster through the slurm-test profile.

One cluster for the whole session: it symlinks /etc/slurm/slurm.conf, so only one can run at a time.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT, copy_project, single_experiment_config
from tests.slurm_cluster import SlurmCluster, slurm_available

PROFILE = PROJECT / "workflow" / "profiles" / "slurm-test"
GPU_RULES = ("train_model", "estimate_losses", "estimate_baselines")
# Real SLURM, polled every 2 s instead of the plugin's growing waits (see the script).
SNAKEMAKE_THROUGH_SLURM = [sys.executable, str(PROJECT / "tests" / "snakemake_quick_polling.py"), "--profile", str(PROFILE)]

_ok, _why = slurm_available()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(not _ok, reason=f"no SLURM test cluster: {_why}")]


# Session scope: the tests that read the DVC repro run after the others (tests/conftest.py), and a
# module-scoped cluster would be started again for them.
@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    # Four fake GPUs so that the tiny DAG's GPU jobs run side by side; eight CPUs so that the
    # grouped CPU tail (its attacks side by side) fits on the node.
    with SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=8, gpus=4) as running:
        yield running


def snakemake_through_slurm(workdir: Path, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE_THROUGH_SLURM, *arguments], cwd=workdir, capture_output=True,
                          text=True, timeout=timeout)


def jobs_of(cluster: SlurmCluster, workdir: Path) -> list[dict[str, str]]:
    """Every SLURM job (any state) submitted from ``workdir``: id, state, rule or group (the plugin's comment)."""
    listing = cluster.run("squeue", "-h", "--states=all", "-o", "%i|%T|%k|%Z").stdout
    jobs = []
    for line in listing.splitlines():
        job_id, state, comment, job_workdir = line.split("|")
        if Path(job_workdir) == workdir.resolve():
            rule = re.sub(r"^rule_|_wildcards_.*$", "", comment)
            # A group job's comment is rule_{group}_{its rules}.
            jobs.append({"id": job_id, "state": state, "rule": "cpu_tail" if rule.startswith("cpu_tail_") else rule})
    return jobs


def gpu_requested(cluster: SlurmCluster, job: dict[str, str]) -> bool:
    return "TresPerJob=gres:gpu:1" in cluster.run("scontrol", "show", "job", job["id"]).stdout


def test_cancelled_training_is_resubmitted_and_resumes_from_its_checkpoint(cluster, versioned, tmp_path):
    # Long enough to be cancelled after its first checkpoint and before it ends. The splits are the
    # DVC repro's (the same data, splits and seed): splitting goes through SLURM in the test below.
    config = single_experiment_config(tmp_path, **{"training.steps": 150, "training.checkpoint_every": 10})
    workdir = copy_project(tmp_path / "run", config)
    (workdir / "results" / "tiny").mkdir(parents=True)
    shutil.copy2(versioned.parent / "first_repro" / "splits.json", workdir / "results" / "tiny" / "splits.json")
    state = workdir / "results" / "tiny" / "train_state" / "target.pt"
    run = subprocess.Popen([*SNAKEMAKE_THROUGH_SLURM, "results/tiny/models/target"], cwd=workdir,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not state.exists():
            assert run.poll() is None and time.monotonic() < deadline, "training never saved a checkpoint"
            time.sleep(0.2)
        training = [job for job in jobs_of(cluster, workdir) if job["rule"] == "train_model"]
        assert [job["state"] for job in training] == ["RUNNING"], training
        cluster.run("scancel", training[0]["id"])
        output, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-4000:]

    training = [job for job in jobs_of(cluster, workdir) if job["rule"] == "train_model"]
    assert [job["state"] for job in training] == ["CANCELLED", "COMPLETED"], training
    assert all(gpu_requested(cluster, job) for job in training), "training is a GPU step"
    log = (workdir / "results" / "tiny" / "logs" / "train_model" / "target.log").read_text()
    resumed = re.search(r"resuming training from step (\d+) of 150", log)
    assert resumed and int(resumed.group(1)) >= 10, log[-2000:]
    curve = (workdir / "results" / "tiny" / "models" / "target" / "loss_curve.csv").read_text().splitlines()
    assert len(curve) == 1 + 150
    assert not state.exists(), "the training state outlived a finished training"


def test_bad_input_fails_once_with_its_log_shown(cluster, tmp_path):
    # 3 roles x (400 + 400) records > the 1797 digits: split_dataset exits 1, whatever the attempt.
    config = single_experiment_config(tmp_path, **{"splits.members": 400, "splits.holdout": 400})
    workdir = copy_project(tmp_path / "run", config)
    result = snakemake_through_slurm(workdir)
    assert result.returncode != 0

    jobs = jobs_of(cluster, workdir)
    assert [(job["rule"], job["state"]) for job in jobs] == [("split_dataset", "FAILED")], jobs
    assert not gpu_requested(cluster, jobs[0]), "splitting is a CPU step"
    output = result.stdout + result.stderr
    assert "error: splits: 3 roles x (400 members + 400 hold-outs) = 2400 records" in output
    assert "Trying to restart" not in output
    assert not (workdir / "results" / "tiny" / "splits.json").exists()


def test_tiny_workflow_runs_through_slurm_and_matches_a_local_run(cluster, versioned, tmp_path):
    # The PFAMI chain and the loss baseline from the splits and models of the DVC repro (a local run
    # of the same experiment; splitting and training go through SLURM in the two tests above) up to
    # the metrics: GPU jobs and the grouped CPU tail, without the jobs that would only add minutes of
    # status polling.
    attacks = {"loss": {}, "pfami_met": {}, "pfami_nns": {"c": 1.0}}
    workdir = copy_project(tmp_path / "run", single_experiment_config(tmp_path, attacks=attacks))
    local = versioned.parent / "first_repro"
    (workdir / "results" / "tiny").mkdir(parents=True)
    shutil.copy2(local / "splits.json", workdir / "results" / "tiny" / "splits.json")
    shutil.copytree(local / "models", workdir / "results" / "tiny" / "models")  # newer than the splits, as made
    result = snakemake_through_slurm(workdir, "results/tiny/metrics.json")
    assert result.returncode == 0, result.stderr[-4000:] + cluster.logs()

    jobs = jobs_of(cluster, workdir)
    # Every job of the DAG (all but the local target rule `all`) was a SLURM batch job that completed;
    # the CPU jobs after estimation as one group job (the profile's `groups`), and the blind baseline,
    # which needs only the splits, as its own.
    expected = {"estimate_losses": 2, "blind_baseline": 1, "cpu_tail": 1}
    assert {rule: sum(job["rule"] == rule for job in jobs) for rule in expected} == expected, jobs
    assert len(jobs) == sum(expected.values()), jobs
    assert {job["state"] for job in jobs} == {"COMPLETED"}, jobs
    assert len(list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))) == len(jobs)
    # The GPU steps asked SLURM for one GPU each, the CPU steps for none.
    assert all(gpu_requested(cluster, job) == (job["rule"] in GPU_RULES) for job in jobs), jobs

    through_slurm = json.loads((workdir / "results" / "tiny" / "metrics.json").read_text())["attacks"]
    locally = json.loads((local / "metrics.json").read_text())["attacks"]
    assert set(through_slurm) == set(attacks)
    assert all(through_slurm[attack] == locally[attack] for attack in attacks)
