"""Shared fixtures: the tiny workflow run once per session in a temporary copy of the project."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from pfami.cli import STEP_GC_THRESHOLDS
from pfami.config import FAMILIES

# Before torch and the rest are imported: the session makes millions of objects in hundreds of small
# tests, so collect garbage as the pipeline's steps do (pfami/cli.py); it saves about 15% of the unit tests' time.
gc.set_threshold(*STEP_GC_THRESHOLDS)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
TINY_CONFIG = PROJECT / "tests" / "data" / "tiny_config.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

torch.set_num_threads(1)


def write_random_images(folder: Path, sizes: list[tuple[int, int]], mode: str = "RGB") -> None:
    """Random-pixel PNGs image_{index}.png of the given (width, height) sizes in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index, size in enumerate(sizes):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"image_{index}.png")


@contextmanager
def killed_after_checkpoint(monkeypatch, step: int):
    """Kill the training run inside the block (KeyboardInterrupt) right after it saves its state at ``step``."""
    from pfami.models import training

    save_state = training.save_training_state

    def save_then_die(path, *args):
        save_state(path, *args)
        if args[4] == step:  # the step count just saved
            raise KeyboardInterrupt("killed mid-training")

    monkeypatch.setattr(training, "save_training_state", save_then_die)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(training, "save_training_state", save_state)


def copy_project(destination: Path, config: Path = TINY_CONFIG) -> Path:
    """A runnable copy of the workflow (rules, scripts, schema) with ``config`` as its config."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "scripts", "config"):
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, destination / name)
    shutil.copy(config, destination / "config" / "config.yaml")
    return destination


def single_experiment_config(tmp_path: Path, name: str = "tiny", **settings) -> Path:
    """The tiny config cut to one experiment, with ``settings`` ({"training.steps": 150, ...}) applied:
    the tests that run the workflow again (SLURM, DVC) need one experiment, not every family."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {name: config["experiments"][name]}
    for dotted, value in settings.items():
        *parents, key = dotted.split(".")
        section = config["experiments"][name]
        for parent in parents:
            section = section[parent]
        assert key in section, dotted
        section[key] = value
    path = tmp_path / f"{name}_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def modules_imported_by(code: str) -> set[str]:
    """The names in ``sys.modules`` after ``code`` runs in a fresh interpreter: what a job doing the same
    would pay to import."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


def run_snakemake(workdir: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*SNAKEMAKE, *arguments], cwd=workdir, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def save_foreign_ddpm(folder: Path, image_size: int = 16, safe: bool = True) -> None:
    """A diffusers folder as another project would leave it: unet/ + scheduler/, no training.json."""
    from pfami.models.ddpm import build_scheduler, build_unet

    torch.manual_seed(3)
    build_unet(image_size, 1, [8, 16], 1, []).save_pretrained(folder / "unet", safe_serialization=safe)
    build_scheduler(1000, 1e-4, 0.02).save_pretrained(folder / "scheduler")


def save_as_pngs(images: np.ndarray, folder: Path) -> None:
    """Images in [-1, 1] [N, 1, S, S] as grey PNGs, as an auditor's folder of records would hold them."""
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        pixels = np.round((image[0] + 1.0) / 2.0 * 255.0).astype(np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"record_{index:03d}.png")


# The audit of a given model in the tiny run, on member and non-member sets that differ in
# distribution: its members are digits 0-4 and its non-members digits 5-9, each a folder of PNGs
# (appended after the 1797 digits, members first, so their record ids follow). The blind baseline
# must see the shift.
AUDIT_INPUTS = "audit_inputs"
AUDIT_RECORDS_PER_SET = 50
AUDIT_MEMBERS = list(range(1797, 1797 + AUDIT_RECORDS_PER_SET))
AUDIT_NON_MEMBERS = list(range(1797 + AUDIT_RECORDS_PER_SET, 1797 + 2 * AUDIT_RECORDS_PER_SET))


def audit_experiment(inputs: Path) -> dict:
    """The tiny experiment as an audit: a 'foreign' DDPM saved here as the target, its members (the first
    digits 0-4) and its non-members (the first digits 5-9) as folders of PNGs under ``inputs``."""
    from sklearn.datasets import load_digits

    from pfami.data import load_digits_images

    save_foreign_ddpm(inputs / "foreign")
    images, labels = load_digits_images(16), load_digits().target
    save_as_pngs(images[labels < 5][:AUDIT_RECORDS_PER_SET], inputs / "members")
    save_as_pngs(images[labels >= 5][:AUDIT_RECORDS_PER_SET], inputs / "non_members")
    audit = yaml.safe_load(TINY_CONFIG.read_text())["experiments"]["tiny"]
    audit["model"]["pretrained"] = str(inputs / "foreign")
    audit["reference_model"] = "own"  # a given target may have seen the shadow's records: it calibrates nothing
    audit["splits"].update(target_members_folder=str(inputs / "members"),
                           target_holdout_folder=str(inputs / "non_members"))
    audit["attacks"] = {"loss": {}, "pfami_met": {}}  # fewer jobs; the attacks have their own tests
    del audit["ablations"]
    return audit


# An experiment whose records come from a folder of PNGs (the uint8 cache of every file-based source,
# not the digits' float32 array), with an attack on each kind of model query that opens the records:
# the loss tensors (loss, PFAMI_Met), SecMI's and PIA's queries. (The other attacks score the same
# files; the tiny experiment runs them all.)
IMAGE_FOLDER_EXPERIMENT = "tiny_images"
IMAGE_FOLDER_INPUTS = "image_folder"
IMAGE_FOLDER_RECORDS = 80
IMAGE_FOLDER_ATTACKS = ("loss", "pfami_met", "secmi_stat", "pia")


def image_folder_experiment(folder: Path) -> dict:
    """The tiny experiment on ``IMAGE_FOLDER_RECORDS`` random RGB PNGs of a few sizes written to ``folder``
    (centre-cropped and resized to 16 px): 12 members + 12 hold-outs per role, ``IMAGE_FOLDER_ATTACKS``,
    no ablations."""
    write_random_images(folder, [(16 + index % 5, 16 + index % 3) for index in range(IMAGE_FOLDER_RECORDS)])
    experiment = yaml.safe_load(TINY_CONFIG.read_text())["experiments"]["tiny"]
    experiment["data"] = {"source": "image_folder", "path": str(folder), "image_size": 16, "channels": 3}
    experiment["splits"] = {"members": 12, "holdout": 12, "attacked_per_part": None}
    experiment["attacks"] = {attack: experiment["attacks"][attack] for attack in IMAGE_FOLDER_ATTACKS}
    del experiment["ablations"]
    return experiment


class BackgroundRun:
    """A command started now in its own process group, its output in ``log``."""

    def __init__(self, command: list[str], cwd: Path, log: Path, env: dict | None = None):
        self.command, self.cwd, self.log = command, cwd, log
        with open(log, "w") as output:
            self.process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def wait(self) -> str:
        """The command's output, once it has finished; an AssertionError with its tail if it failed."""
        if self.process.wait() != 0:
            raise AssertionError(f"{' '.join(self.command)} failed:\n{self.log.read_text()[-6000:]}")
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait()


# Stage commands call `snakemake` and the scripts import `pfami`: both from this interpreter's environment.
# Git commits (ours and `dvc exp run`'s) need an identity even where none is configured.
DVC_ENVIRONMENT = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "PYTHONPATH": str(PROJECT), "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
                   "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}


def run_command(workdir: Path, *command: str) -> str:
    """Run ``command`` in ``workdir`` with ``DVC_ENVIRONMENT``; its output, or an AssertionError with its tail."""
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=DVC_ENVIRONMENT)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def stages_run(dvc_output: str) -> set[str]:
    """The DVC stages a `dvc repro` or `dvc exp run` ran, from its output."""
    return {line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running stage")}


def start_tiny_run(workdir: Path) -> BackgroundRun:
    """The whole tiny DAG and its ablations, with an audit of a given model beside the tiny config's
    experiments (one Snakemake run packs both cores better than several)."""
    copy_project(workdir)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["audit"] = audit_experiment(workdir / AUDIT_INPUTS)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return BackgroundRun([*SNAKEMAKE, "--cores", "2", "all", "ablations"], workdir, workdir.parent / "tiny_run.log")


def image_folder_queries(workdir: Path) -> list[Path]:
    """The files of the steps that open the records of ``image_folder_experiment``: the loss tensors and
    SecMI's and PIA's queries on the target's records (after its split and training)."""
    results = workdir / "results" / IMAGE_FOLDER_EXPERIMENT
    return [results / "losses" / "target-on-target.npz",
            *(results / "baselines" / f"{family}-target-on-target.npz" for family in FAMILIES)]


def start_image_folder_run(workdir: Path) -> BackgroundRun:
    """``image_folder_experiment`` alone, up to ``image_folder_queries``."""
    copy_project(workdir)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {IMAGE_FOLDER_EXPERIMENT: image_folder_experiment(workdir / IMAGE_FOLDER_INPUTS)}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    targets = [str(path.relative_to(workdir)) for path in image_folder_queries(workdir)]
    return BackgroundRun([*SNAKEMAKE, "--cores", "2", *targets], workdir, workdir.parent / "image_folder_run.log")


def start_dvc_repro(root: Path) -> BackgroundRun:
    """`dvc repro` in a new git + DVC repository (``root/project``, remote ``root/remote``) of the tiny
    experiment with PFAMI's attacks and the loss baseline (the SecMI / PIA queries would only add minutes)."""
    attacks = {"loss": {}, "pfami_met": {}, "pfami_met_single": {"strength_index": 1},
               "pfami_nns": {"c": 1.0}}
    workdir = copy_project(root / "project", single_experiment_config(root, attacks=attacks))
    shutil.copytree(PROJECT / "pfami", workdir / "pfami", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / ".gitignore", workdir / ".gitignore")
    run_command(workdir, sys.executable, "scripts/write_dvc_yaml.py")
    run_command(workdir, "git", "init", "-q")
    run_command(workdir, "dvc", "init", "-q")
    shutil.copy(PROJECT / ".dvcignore", workdir / ".dvcignore")
    run_command(workdir, "dvc", "config", "core.analytics", "false")
    run_command(workdir, "dvc", "remote", "add", "-d", "local", str(root / "remote"))
    run_command(workdir, "git", "add", "-A")
    run_command(workdir, "git", "commit", "-qm", "project")
    return BackgroundRun(["dvc", "repro"], workdir, root / "dvc_repro.log", DVC_ENVIRONMENT)


# The long runs, in the order they start; each is the first step of the fixture of that name.
BACKGROUND_RUNS = {"tiny_run": start_tiny_run, "versioned": start_dvc_repro, "image_folder_run": start_image_folder_run}


def pytest_collection_modifyitems(items):
    # Tests run in the order the background runs they need finish (see `background_runs`; a stable
    # sort keeps the file order within each group): first those that need none, then those that read
    # the DVC repro, then those that read the tiny run.
    def group(item) -> int:
        fixtures = getattr(item, "fixturenames", ())
        return 2 if "tiny_run" in fixtures else 1 if "versioned" in fixtures else 0

    items.sort(key=group)


@pytest.fixture(scope="session", autouse=True)
def background_runs(request, tmp_path_factory) -> dict[str, BackgroundRun]:
    """The session's long runs (``BACKGROUND_RUNS``), started as the session begins, each only if a
    selected test needs its fixture. The other tests run meanwhile: the DVC, SLURM and unit tests
    leave cores idle much of the time (one Snakemake per DVC stage, status polling, single jobs)."""
    needed = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    runs = {name: start(tmp_path_factory.mktemp(name)) for name, start in BACKGROUND_RUNS.items() if name in needed}
    yield runs
    for run in runs.values():
        run.stop()  # still running only when the session ended early (`-x`, Ctrl-C)


@pytest.fixture(scope="session")
def versioned(background_runs) -> Path:
    """The git + DVC repository of the tiny experiment that `dvc repro` reproduced (``start_dvc_repro``),
    committed and pushed. ``first_repro/`` beside it keeps the first repro's splits, models and metrics,
    which later tests change in the repository (`dvc exp run`)."""
    repro = background_runs["versioned"]
    output, workdir = repro.wait(), repro.cwd
    assert stages_run(output) == set(yaml.safe_load((workdir / "dvc.yaml").read_text())["stages"]), output[-3000:]
    first_repro = workdir.parent / "first_repro"
    shutil.copytree(workdir / "results" / "tiny", first_repro, ignore=shutil.ignore_patterns("*.npz", "logs", "figures"))
    # The first repro's metrics become the repository's committed reference results (`make reference`);
    # the verdict stage then depends on them and compares every later run with them.
    run_command(workdir, sys.executable, "scripts/verify_reproduction.py", "--config", "config/config.yaml",
                "--write-reference")
    run_command(workdir, sys.executable, "scripts/write_dvc_yaml.py")
    assert "Verdict: REPRODUCED." in run_command(workdir, "dvc", "repro", "verdict")
    run_command(workdir, "git", "add", "-A")
    run_command(workdir, "git", "commit", "-qm", "results")
    run_command(workdir, "dvc", "push")
    return workdir


@pytest.fixture(scope="session")
def image_folder_run(background_runs) -> Path:
    """The project folder of ``start_image_folder_run``'s run, once it has finished."""
    background_runs["image_folder_run"].wait()
    return background_runs["image_folder_run"].cwd


@pytest.fixture(scope="session")
def tiny_run(background_runs) -> Path:
    """The project folder of the session's tiny run, once the run has finished; tests read its artefacts."""
    background_runs["tiny_run"].wait()
    return background_runs["tiny_run"].cwd
