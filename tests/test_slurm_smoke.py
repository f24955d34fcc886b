"""The two-rule smoke workflow runs through a real (throwaway) SLURM cluster."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slurm_cluster import SlurmCluster, slurm_available

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "data" / "slurm_smoke" / "Snakefile"
PROFILE = ROOT / "workflow" / "profiles" / "slurm-test"

_ok, _why = slurm_available()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not _ok, reason=f"no SLURM test cluster: {_why}"),
]


def test_smoke_workflow_through_slurm(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(SMOKE, workdir / "Snakefile")
    snakemake = Path(sys.executable).with_name("snakemake")

    with SlurmCluster(tmp_path / "slurm") as cluster:
        result = subprocess.run(
            [str(snakemake), "--profile", str(PROFILE)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr + cluster.logs()
        jobs = cluster.run("squeue", "-h", "--states=all", "-o", "%i %T %k").stdout

    # Both rules ran as SLURM batch jobs...
    assert re.search(r"COMPLETED rule_prepare", jobs), jobs
    assert re.search(r"COMPLETED rule_train_model", jobs), jobs
    prepare = (workdir / "results" / "prepare.txt").read_text()
    train = (workdir / "results" / "train_model.txt").read_text()
    assert re.match(r"job=\d+ ", prepare), prepare
    assert re.match(r"job=\d+ ", train), train
    # ...and train_model got the (fake) GPU the profile asks for.
    assert "gpus=0" in train, train
