"""The whole DAG on the tiny config, in a temporary copy of the project."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pfami.attacks import ATTACKS
from pfami.config import FAMILIES, FAMILY_OF
import yaml

from tests.conftest import (IMAGE_FOLDER_ATTACKS, IMAGE_FOLDER_EXPERIMENT, IMAGE_FOLDER_RECORDS, PROJECT, copy_project,
                            image_folder_queries, run_snakemake, single_experiment_config)

pytestmark = pytest.mark.workflow

ROLES = ("target", "shadow", "reference")
# The models of an experiment with a crossed reference (tiny, tiny_ldm; tiny_vae has its own).
CROSSED_ROLES = ("target", "shadow")
LOSS_TENSORS = ("target-on-target", "reference-on-target", "shadow-on-shadow", "reference-on-shadow")


def test_every_artefact_is_there(tiny_run):
    results = tiny_run / "results" / "tiny"
    splits = json.loads((results / "splits.json").read_text())
    assert len(splits["fingerprint"]) == 64 and splits["record_count"] == 1797
    assert not (results / "models" / "reference").exists()  # reference_model: crossed trains no third model
    for role in CROSSED_ROLES:
        model = results / "models" / role
        assert (model / "unet" / "diffusion_pytorch_model.safetensors").exists()
        assert (model / "scheduler" / "scheduler_config.json").exists()
        assert len((model / "loss_curve.csv").read_text().splitlines()) == 1 + 12
        assert (results / "logs" / "train_model" / f"{role}.log").exists()
    for name in LOSS_TENSORS:
        with np.load(results / "losses" / f"{name}.npz") as tensor:
            assert tensor["losses"].shape == (48, 3, 4) and np.isfinite(tensor["losses"]).all()
            assert tensor["is_member"].sum() == 24
    with np.load(results / "fluctuations" / "target.npz") as features:
        assert features["fluctuation"].shape == (48, 3, 3)
    metrics = json.loads((results / "metrics.json").read_text())
    assert set(metrics["attacks"]) == set(ATTACKS)
    for attack, result in metrics["attacks"].items():
        scores = (results / "scores" / f"{attack}.csv").read_text().splitlines()
        assert scores[0] == "record_id,role,is_member,score" and len(scores) == 1 + 96
        assert (results / "roc" / f"{attack}.csv").exists()
        assert 0 <= result["auc"] <= 1 and result["ci95"]["auc"][0] <= result["ci95"]["auc"][1]
        assert {"tpr_at_0.01_fpr", "tpr_at_0.001_fpr", "asr", "threshold_fpr", "queries_per_record"} <= result.keys()
    assert metrics["attacks"]["pfami_met"]["queries_per_record"] == {"target": 12, "reference": 12}
    assert metrics["attacks"]["secmi_stat"]["queries_per_record"] == {"target": 3, "reference": 0}
    for family in FAMILIES:
        for records in ("target", "shadow"):
            with np.load(results / "baselines" / f"{family}-{records}-on-{records}.npz") as queries:
                assert queries["is_member"].sum() == 24 and len(queries["record_ids"]) == 48
                spent = {name.removesuffix("_evaluations"): float(queries[name]) for name in queries.files
                         if name.endswith("_evaluations")}
                assert spent and all(metrics["attacks"][attack]["queries_per_record"]["target"] == count
                                     for attack, count in spent.items())
    for figure in ("roc", "fluctuation", "score_distributions", "training_loss", "exposed_records"):
        assert (results / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    # every target record's score and rank under every attack and the blind baseline
    exposed = (results / "exposed_records.csv").read_text().splitlines()
    assert len(exposed) == 1 + 48 and exposed[0].startswith("record_id,is_member,score_")
    assert {f"rank_{attack}" for attack in [*ATTACKS, "blind_baseline"]} <= set(exposed[0].split(","))
    assert metrics["blind_baseline"]["queries_per_record"] == {"target": 0, "reference": 0}
    assert (results / "roc" / "blind_baseline.csv").exists()
    summary = (tiny_run / "results" / "summary.md").read_text()
    assert "## tiny" in summary and "| PFAMI_NNs |" in summary and "| Loss |" in summary and "| SecMI_NNs |" in summary
    assert "PFAMI vs the best baseline (per metric): AUC" in summary
    # the tiny config's sampling section sets 4 steps per sampler
    assert "Samplers varied: DDPM (4 steps), DDIM (4 steps), PNDM (4 steps)" in summary.split("## tiny_vae")[0]
    run_config = yaml.safe_load((tiny_run / "config" / "config.yaml").read_text())  # the tiny config + the audit
    # every attack of every experiment, and each experiment's blind baseline
    attack_rows = sum(len(settings["attacks"]) + 1 for settings in run_config["experiments"].values())
    assert len((tiny_run / "results" / "summary.csv").read_text().splitlines()) == 1 + attack_rows
    for role in CROSSED_ROLES:  # one grid per diffusion model, a row per sampler
        assert (results / "figures" / f"samples_{role}.png").read_bytes()[:4] == b"\x89PNG"
    assert not (results / "figures" / "samples_reference.png").exists()
    assert not list(tiny_run.glob("results/**/*.partial*")), "a temporary file was left behind"


def test_vae_experiment_runs_through_the_same_dag(tiny_run):
    results = tiny_run / "results" / "tiny_vae"
    for role in ROLES:
        model = results / "models" / role
        assert (model / "vae" / "model.safetensors").exists() and not (model / "unet").exists()
        assert json.loads((model / "training.json").read_text())["family"] == "vae"
    for name in LOSS_TENSORS:
        with np.load(results / "losses" / f"{name}.npz") as tensor:
            assert tensor["losses"].shape == (48, 3, 4) and (tensor["losses"] > 0).all()
            assert tensor["timesteps"].tolist() == [0, 1, 2]  # the ELBO draws
    with np.load(results / "losses" / "target-on-target.npz") as target, \
            np.load(results / "losses" / "reference-on-target.npz") as reference:
        assert not np.array_equal(target["losses"], reference["losses"])  # two different networks
    metrics = json.loads((results / "metrics.json").read_text())
    # the SecMI / PIA baselines need a noise predictor: a VAE gets every other attack
    assert set(metrics["attacks"]) == set(ATTACKS) - set(FAMILY_OF)
    assert all(0 <= result["auc"] <= 1 for result in metrics["attacks"].values())
    for figure in ("roc", "fluctuation", "score_distributions", "training_loss", "exposed_records"):
        assert (results / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    # every target record's score and rank under every attack and the blind baseline
    exposed = (results / "exposed_records.csv").read_text().splitlines()
    assert len(exposed) == 1 + 48 and exposed[0].startswith("record_id,is_member,score_")
    assert {f"rank_{attack}" for attack in [*metrics["attacks"], "blind_baseline"]} <= set(exposed[0].split(","))
    assert metrics["blind_baseline"]["queries_per_record"] == {"target": 0, "reference": 0}
    assert (results / "roc" / "blind_baseline.csv").exists()
    for role in ROLES:  # one row of images decoded from prior draws per model
        assert (results / "figures" / f"samples_{role}.png").read_bytes()[:4] == b"\x89PNG"
    summary = (tiny_run / "results" / "summary.md").read_text()
    assert "## tiny_vae" in summary and "VAE (conv 4x8, latent 4" in summary
    vae_block = summary.split("## tiny_vae")[1].split("\n## ")[0]
    assert "Samplers varied" not in vae_block, "a VAE has no samplers to vary"


def test_ldm_experiment_shares_one_autoencoder_and_trains_a_latent_unet_per_role(tiny_run):
    results = tiny_run / "results" / "tiny_ldm"
    shared = results / "autoencoder"
    record = json.loads((shared / "training.json").read_text())
    assert record["family"] == "autoencoder" and record["records"] == 32  # model.autoencoder.training_records
    assert len((shared / "loss_curve.csv").read_text().splitlines()) == 1 + 8
    assert (results / "logs" / "train_autoencoder.log").exists()
    assert (results / "benchmarks" / "train_autoencoder.tsv").exists()
    shared_weights = (shared / "autoencoder" / "diffusion_pytorch_model.safetensors").read_bytes()
    unet_weights = set()
    for role in CROSSED_ROLES:
        model = results / "models" / role
        assert json.loads((model / "training.json").read_text())["family"] == "ldm"
        assert json.loads((model / "unet" / "config.json").read_text())["sample_size"] == 8  # the 16 px image's latent
        assert (model / "autoencoder" / "diffusion_pytorch_model.safetensors").read_bytes() == shared_weights
        unet_weights.add((model / "unet" / "diffusion_pytorch_model.safetensors").read_bytes())
        assert (results / "figures" / f"samples_{role}.png").read_bytes()[:4] == b"\x89PNG"
    assert len(unet_weights) == 2  # each role trained its own U-Net
    for name in LOSS_TENSORS:
        with np.load(results / "losses" / f"{name}.npz") as tensor:
            assert tensor["losses"].shape == (48, 3, 4) and np.isfinite(tensor["losses"]).all()
            assert tensor["timesteps"].tolist() == [0, 200, 400]
    metrics = json.loads((results / "metrics.json").read_text())
    assert set(metrics["attacks"]) == {"loss", "pfami_met"}
    assert all(0 <= result["auc"] <= 1 for result in metrics["attacks"].values())
    summary = (tiny_run / "results" / "summary.md").read_text()
    assert "## tiny_ldm" in summary and "LDM (shared 4x8 AutoencoderKL to a 2 x 8 x 8 latent" in summary


def test_an_image_folder_source_reaches_every_kind_of_model_query(image_folder_run):
    """An experiment on a folder of PNGs (``tests.conftest.image_folder_experiment``), held as the uint8
    cache: every step that opens the records (training, the loss tensors, SecMI's and PIA's queries) opens
    them as the split did, so the split file's fingerprint matches in each (SecMI and PIA once fingerprinted
    a float32 copy and refused every source but the digits). Only those steps run, on the target's records
    (the shadow's go through the same code; ``tests.conftest.start_image_folder_run``): the steps after them
    read their files, whatever the source, and the tiny run covers them."""
    results = image_folder_run / "results" / IMAGE_FOLDER_EXPERIMENT
    queries = image_folder_queries(image_folder_run)
    splits = json.loads((results / "splits.json").read_text())
    assert splits["record_count"] == IMAGE_FOLDER_RECORDS
    assert len(list((image_folder_run / "results" / "cache").glob("image_folder-16px-3ch-*.npy"))) == 1
    assert {FAMILY_OF[attack] for attack in IMAGE_FOLDER_ATTACKS if attack in FAMILY_OF} == set(FAMILIES)
    for path in queries:
        with np.load(path) as tensors:
            assert tensors["record_ids"].tolist() == splits["splits"]["target_members"] + \
                splits["splits"]["target_holdout"], path.name
            assert tensors["is_member"].sum() == 12


def test_model_of_the_wrong_family_fails_estimation_with_one_line(tiny_run, tmp_path):
    output = tmp_path / "losses.npz"
    result = subprocess.run([sys.executable, str(PROJECT / "scripts" / "estimate_losses.py"),
                             "--data", '{"source": "digits", "image_size": 16, "channels": 1}',
                             "--splits-file", str(tiny_run / "results" / "tiny_vae" / "splits.json"),
                             "--records", "target", "--family", "ddpm",
                             "--model", "target", str(tiny_run / "results" / "tiny_vae" / "models" / "target"), str(output),
                             "--estimation", '{"timesteps": [0], "batch_size": 8}',
                             "--perturbation", '{"mechanism": "crop", "strengths": [0.9]}', "--seed", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "holds a vae model but the experiment's model.family is ddpm" in result.stderr.strip().splitlines()[-1]
    assert not output.exists()


def test_the_run_ends_with_a_verdict_against_the_committed_reference_not_its_own_output(tiny_run):
    verdict = (tiny_run / "results" / "reproduction.md").read_text()
    # The tiny experiments have no reference: said plainly, not an error of the run.
    assert "Verdict: NOT REPRODUCED: no reference for tiny, tiny_vae, tiny_ldm, audit" in verdict
    # A reference made on purpose from this run; the next run is compared with it, and says so last.
    subprocess.run([sys.executable, "scripts/verify_reproduction.py", "--config", "config/config.yaml",
                    "--write-reference"], cwd=tiny_run, check=True, capture_output=True)
    printed = run_snakemake(tiny_run, "--cores", "1").stdout
    closing = [line for line in printed.splitlines() if line.startswith("Verdict:")]
    assert closing == ["Verdict: REPRODUCED. Every figure of every attack is identical to the reference or within its "
                       "tolerance."], printed[-3000:]
    assert "| tiny | pfami_nns | " in printed and "| identical |" in printed
    # A run of other targets does not print the old verdict again.
    assert "Verdict:" not in run_snakemake(tiny_run, "--cores", "1", "results/summary.md").stdout


def test_nothing_left_to_do_after_a_run(tiny_run):
    assert "Nothing to be done" in run_snakemake(tiny_run, "-n").stdout


def _keys_reversed(value):
    """``value`` with the keys of every mapping in it, at every depth, in reverse order (lists keep theirs)."""
    if isinstance(value, dict):
        return {key: _keys_reversed(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_keys_reversed(item) for item in value]
    return value


def test_the_same_config_with_its_keys_in_another_order_plans_nothing(tiny_run, tmp_path):
    # Every rule's params are the config's values, not its text: key order in the YAML changes nothing.
    config = yaml.safe_load((tiny_run / "config" / "config.yaml").read_text())
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(yaml.safe_dump(_keys_reversed(config), sort_keys=False))
    assert yaml.safe_load(reordered.read_text()) == config
    assert list(yaml.safe_load(reordered.read_text())["experiments"]["tiny"]) != list(config["experiments"]["tiny"])
    result = run_snakemake(tiny_run, "-n", "--configfile", str(reordered), "--replace-workflow-config", "all",
                           "ablations")
    assert "Nothing to be done" in result.stdout, result.stdout[-3000:]


def test_html_report_is_the_audits_document(tiny_run):
    run_snakemake(tiny_run, "--report", "report.html")
    report = (tiny_run / "report.html").read_text(errors="replace")
    assert "roc.png" in report and "summary.md" in report and "exposed_records.png" in report
    # Its first page is the audit's document: every experiment's table with the blind baseline's row, the
    # audit's warning, the figures and the run's config.
    first_page = report.split("Membership-inference audit", 1)[1]
    experiments = yaml.safe_load((tiny_run / "config" / "config.yaml").read_text())["experiments"]
    assert all(f'id=\\"{name}\\"' in first_page or f'id="{name}"' in first_page
               for name in ("tiny", "tiny_vae", "audit", "config"))
    assert first_page.count("Blind baseline (images only, no model)") >= len(experiments)
    assert "Warning: the blind baseline" in first_page and "data:image/png;base64," in first_page
    assert "bootstrap_resamples" in first_page  # the config
    document = (tiny_run / "results" / "audit.html").read_text()
    assert document.startswith("<!doctype html>") and document.count("<img ") == 3 * len(experiments)  # 3 figures each


def test_default_config_plans_the_whole_dag():
    result = run_snakemake(PROJECT, "-n", "--forceall", "--quiet", "rules")
    for rule in ("split_dataset", "train_model", "estimate_losses", "extract_fluctuations", "score_attack",
                 "estimate_baselines", "score_baseline", "evaluate", "make_figures", "make_summary"):
        assert rule in result.stdout


def planned_commands(workdir: Path) -> dict[str, list[str]]:
    """{script: the shell commands that run it} in a forced dry run of ``workdir``'s default target."""
    plan = run_snakemake(workdir, "-n", "-p", "--forceall").stdout
    commands = {}
    for line in plan.splitlines():
        if match := re.search(r"python scripts/(\w+)\.py", line):
            commands.setdefault(match[1], []).append(line.strip())
    return commands


def test_a_crossed_reference_calibrates_each_record_set_with_the_other_model_and_an_own_one_adds_a_model(tmp_path):
    """The default's reference_model: crossed (the shadow model calibrates the target's records, the target
    model the shadow's); `own`, the paper's, trains a reference model on its own split and changes nothing else."""
    crossed = planned_commands(PROJECT)
    for records, other in (("target", "shadow"), ("shadow", "target")):
        for name in ("digits_ddpm", "digits_vae"):
            [command] = [line for line in crossed["estimate_losses"]
                         if f"results/{name}/losses/{records}-on-{records}.npz" in line]
            assert (f"--model reference results/{name}/models/{other} results/{name}/losses/reference-on-{records}.npz"
                    in command)
    assert len(crossed["train_model"]) == 4 and not any("--role reference" in line for line in crossed["train_model"])
    config = (PROJECT / "config" / "config.yaml").read_text()
    assert config.count("reference_model: crossed") == 2
    own_config = tmp_path / "own.yaml"
    own_config.write_text(config.replace("reference_model: crossed", "reference_model: own"))
    own = planned_commands(copy_project(tmp_path / "own", own_config))
    assert all("/models/reference results/" in line for line in own["estimate_losses"])

    def without_reference_folder(lines):
        return sorted(re.sub(r"--model reference \S+ ", "--model reference FOLDER ", line) for line in lines)

    # the same jobs but for the reference model's folder, and two trainings more
    assert without_reference_folder(own["estimate_losses"]) == without_reference_folder(crossed["estimate_losses"])
    assert set(crossed["train_model"]) < set(own["train_model"]) and len(own["train_model"]) == 6
    assert [line for line in own["train_model"] if line not in crossed["train_model"]] == [
        line for line in own["train_model"] if "--role reference" in line]


# The steps that run a model (training, loss tensors, baseline queries): the SLURM profile sends them
# to a GPU. The sample grids stay on CPU nodes (a few hundred strided steps per model).
GPU_STEPS = {"train_model", "train_autoencoder", "estimate_losses", "estimate_baselines", "train_snapshots",
             "estimate_mechanism_losses", "estimate_snapshot_losses"}


def test_the_slurm_profile_sends_every_model_step_of_the_main_run_and_the_ablations_to_a_gpu():
    plan = run_snakemake(PROJECT, "-n", "--forceall", "--profile", "workflow/profiles/slurm", "all", "ablations").stdout
    # each job's block: "rule NAME:", its details, then "resources: ..." (grouped jobs print none)
    resources = dict(re.findall(r"^(?:local)?rule (\w+):\n(?:(?!(?:local)?rule ).*\n)*?\s+resources: (.*)$", plan,
                                re.MULTILINE))
    assert {"train_model", "estimate_mechanism_losses", "split_dataset", "sample_attacked_models"} <= set(resources)
    on_gpu = {rule for rule, requested in resources.items() if "gpu=1" in requested}
    assert on_gpu == GPU_STEPS & set(resources), resources


def test_lint_has_nothing_to_say():
    result = run_snakemake(PROJECT, "--lint")
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize("edit, message", [
    (("members: 24,", "members: many,"), "config error: experiments.tiny.splits.members: 'many' is not of type"),
    (("mechanism: crop", "mechanism: hue"), "config error: experiments.tiny.perturbation.mechanism: 'hue' needs RGB"),
    (("strength_index: 1", "strength_index: 9"), "config error: experiments.tiny.attacks.pfami_met_single.strength_index"),
    # NaN and infinity get past the schema's bounds (comparisons with NaN are false): refused up front.
    (("strengths: [0.9, 0.8, 0.7]", "strengths: [0.9, .nan, 0.7]"),
     "config error: experiments.tiny.perturbation.strengths.1: NaN is not a number; give a finite value"),
    (("learning_rate: 0.001, warmup", "learning_rate: .inf, warmup"),
     "config error: experiments.tiny.training.learning_rate: infinity is not a finite number; give a finite value"),
])
def test_bad_config_fails_before_anything_runs_with_one_line(tmp_path, edit, message):
    workdir = copy_project(tmp_path / "bad")
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text().replace(*edit, 1))  # the first experiment, "tiny", only
    result = run_snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("config error")]
    assert len(lines) == 1 and lines[0].startswith(message)
    assert not (workdir / "results").exists()


def test_split_sizes_larger_than_the_data_fail_with_one_line_and_no_file(tmp_path):
    output = tmp_path / "splits.json"
    result = subprocess.run([sys.executable, str(PROJECT / "scripts" / "split_dataset.py"),
                             "--data", '{"source": "digits", "image_size": 16, "channels": 1}',
                             "--splits", '{"members": 500, "holdout": 200}', "--seed", "0", "--output", str(output)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: splits: 3 roles x (500 members + 200 hold-outs)")
    assert not output.exists()


def test_a_failed_steps_one_line_message_reaches_the_terminal_of_a_local_run(tmp_path):
    workdir = copy_project(tmp_path / "run", single_experiment_config(tmp_path, **{"splits.members": 700}))
    result = run_snakemake(workdir, "--cores", "1", "results/tiny/splits.json", check=False)
    assert result.returncode != 0
    assert ("split_dataset failed (results/tiny/logs/split_dataset.log): error: splits: 3 roles x (700 members + "
            "24 hold-outs) = 2172 records but the data set has 1797") in result.stderr
    assert not (workdir / "results" / "tiny" / "splits.json").exists()


def test_missing_model_fails_estimation_before_any_tensor_is_written(tiny_run, tmp_path):
    # The attacked model exists, the reference does not: the job fails before estimating either.
    attacked, reference = tmp_path / "target-on-target.npz", tmp_path / "reference-on-target.npz"
    result = subprocess.run([sys.executable, str(PROJECT / "scripts" / "estimate_losses.py"),
                             "--data", '{"source": "digits", "image_size": 16, "channels": 1}',
                             "--splits-file", str(tiny_run / "results" / "tiny" / "splits.json"), "--records", "target",
                             "--model", "target", str(tiny_run / "results" / "tiny" / "models" / "target"), str(attacked),
                             "--model", "reference", str(tmp_path / "no_model"), str(reference),
                             "--estimation", '{"timesteps": [0], "batch_size": 8}',
                             "--perturbation", '{"mechanism": "crop", "strengths": [0.9]}', "--seed", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (f"error: {tmp_path / 'no_model'}: no such model folder; "
                                                      "train the model first or fix the path")
    assert not attacked.exists() and not reference.exists()
