"""Ablation studies: subset metrics on hand-made arrays, config refusals, training snapshots, and
the `ablations` target, made by the tiny workflow run (its plan reuses the main run's work)."""

import csv
import json
import re

import numpy as np
import pytest
import torch
import yaml

from benchmarks.reproduce_default import ablation_rules
from pfami import ablations
from pfami.config import ConfigError, check_config
from pfami.likelihood import diffusion_losses
from pfami.models.ddpm import load_ddpm, train_ddpm
from tests.conftest import PROJECT, TINY_CONFIG, run_snakemake

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
STUDIES = ("timesteps", "strengths", "query_budget", "mechanisms", "memorisation", "classifier_seeds")


def separating_fluctuation(records=8, timesteps=3, strengths=4, informative_timestep=1):
    """H [R, M, N] where only one timestep tells members (first half) from non-members."""
    is_member = np.arange(records) < records // 2
    fluctuation = np.zeros((records, timesteps, strengths))
    fluctuation[:, informative_timestep] = np.where(is_member, 1.0, -1.0)[:, None]
    return fluctuation, is_member


# --- subsets ---------------------------------------------------------------------------------


def test_spread_indices_keep_both_ends_and_take_the_middle_alone():
    assert ablations.spread_indices(10, 1) == [4]
    assert ablations.spread_indices(10, 2) == [0, 9]
    assert ablations.spread_indices(10, 4) == [0, 3, 6, 9]
    assert ablations.spread_indices(5, 5) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot pick 4 of 3"):
        ablations.spread_indices(3, 4)


def test_first_per_part_takes_the_first_members_and_hold_outs_in_order():
    is_member = np.array([True, True, True, False, False, False])
    assert ablations.first_per_part(is_member, 2).tolist() == [0, 1, 3, 4]
    assert ablations.first_per_part(is_member, None).tolist() == list(range(6))
    with pytest.raises(ValueError, match="4 records per part"):
        ablations.first_per_part(is_member, 4)


def test_select_records_reorders_rows_and_refuses_missing_ones():
    arrays = {"losses": np.arange(12.0).reshape(3, 2, 2), "record_ids": np.array([30, 10, 20]),
              "is_member": np.array([True, False, True]), "strengths": np.array([0.9])}
    chosen = ablations.select_records(arrays, np.array([20, 30]))
    assert chosen["record_ids"].tolist() == [20, 30] and chosen["is_member"].tolist() == [True, True]
    assert np.array_equal(chosen["losses"], arrays["losses"][[2, 0]])
    with pytest.raises(ValueError, match=r"records \[99\] are not in the loss tensor"):
        ablations.select_records(arrays, np.array([99]))


def test_subset_scores_are_means_over_the_chosen_grid():
    fluctuation = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    assert np.allclose(ablations.pfami_met_subset(fluctuation, [0, 2], [1]), fluctuation[:, [0, 2], 1].mean(axis=1))
    losses = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)
    assert np.allclose(ablations.loss_subset(losses, [1]), -losses[:, 1, 0])
    reference = np.ones_like(losses)
    assert np.allclose(ablations.calibrated_loss_subset(losses, reference, [0, 1]), -(losses[:, :2, 0].mean(1) - 1))


def test_timestep_study_finds_the_one_informative_timestep():
    fluctuation, is_member = separating_fluctuation(informative_timestep=1)
    # The loss of the record itself tells members apart only at timestep 2.
    losses = np.ones((8, 3, 5))
    losses[:, 2, 0] = np.where(is_member, 0.1, 0.9)
    rows = ablations.timestep_rows(fluctuation, losses, is_member, [0, 100, 200], [1, 3])
    single = {(row["attack"], row["timestep"]): row["auc"] for row in rows if row["study"] == "one_timestep"}
    assert single == {("pfami_met", 0): 0.5, ("pfami_met", 100): 1.0, ("pfami_met", 200): 0.5,
                      ("loss", 0): 0.5, ("loss", 100): 0.5, ("loss", 200): 1.0}
    first = {(row["attack"], row["timestep_count"]): row["auc"] for row in rows if row["study"] == "first_timesteps"}
    assert first == {("pfami_met", 1): 0.5, ("pfami_met", 3): 1.0, ("loss", 1): 0.5, ("loss", 3): 1.0}


def test_strength_study_counts_neighbours_and_ranges():
    fluctuation, is_member = separating_fluctuation(strengths=4)
    fluctuation[:, :, 3] = -10 * fluctuation[:, :, 3]  # the strongest perturbation points the wrong way
    rows = ablations.strength_rows(fluctuation, is_member, [0.9, 0.8, 0.7, 0.6], [1, 2, 4])
    by_study = {}
    for row in rows:
        by_study.setdefault(row["study"], []).append(row)
    assert [row["strengths"] for row in by_study["neighbour_count"]] == ["0.8", "0.9 0.6", "0.9 0.8 0.7 0.6"]
    assert [row["auc"] for row in by_study["one_strength"]] == [1.0, 1.0, 1.0, 0.0]
    assert [(row["strength_first"], row["strength_last"]) for row in by_study["strength_range"]] == [
        (0.9, 0.9), (0.9, 0.8), (0.9, 0.7), (0.9, 0.6)]
    assert by_study["strength_range"][-1]["auc"] == 0.0


def test_query_budget_counts_both_models_and_takes_any_attack_from_metrics():
    fluctuation, is_member = separating_fluctuation(timesteps=3, strengths=4)
    losses = np.ones((8, 3, 5))
    metrics = {"pfami_met": {"auc": 0.7, "tpr_at_0.01_fpr": 0.1, "tpr_at_0.001_fpr": 0.0,
                             "queries_per_record": {"target": 15, "reference": 15}},
               "secmi_stat": {"auc": 0.6, "tpr_at_0.01_fpr": 0.05, "tpr_at_0.001_fpr": 0.0,
                              "queries_per_record": {"target": 11, "reference": 0}}}
    rows = ablations.query_budget_rows(fluctuation, losses, losses, is_member, [1, 3], [1, 4], metrics)
    queries = {(row["attack"], row["source"], row["timestep_count"], row["neighbour_count"]): row["queries"]
               for row in rows}
    assert queries[("pfami_met", "subset", 1, 1)] == 2 * 1 * 2
    assert queries[("pfami_met", "subset", 3, 4)] == 2 * 3 * 5
    assert queries[("loss", "subset", 3, 0)] == 3 and queries[("calibrated_loss", "subset", 3, 0)] == 6
    assert queries[("secmi_stat", "metrics.json", "", "")] == 11
    assert queries[("pfami_met", "metrics.json", "", "")] == 30


def test_classifier_seed_study_repeats_each_classifier_first_with_the_main_seed_and_averages_a_resnet():
    from pfami.attacks.pfami import pfami_nns_scores
    from pfami.metrics import fit_threshold, operating_point
    from pfami.seeding import classifier_seeds, derived_seed

    rng = np.random.default_rng(0)
    is_member = np.arange(40) < 20
    # members' H is higher everywhere, with noise: learnable, not perfectly
    shadow, target = (rng.normal(size=(40, 3, 4)) + 0.7 * is_member[:, None, None] for _ in range(2))
    logistic, resnet = {"classifier": "logistic", "c": 0.01}, {"classifier": "resnet", "epochs": 4, "learning_rate": 0.01}
    rows = ablations.classifier_seed_rows(shadow, is_member, target, is_member,
                                          {"logistic": logistic, "resnet": resnet}, 2308, 3)
    assert [(row["classifier"], row["run"]) for row in rows] == [
        ("logistic", "0"), ("logistic", "1"), ("logistic", "2"), ("resnet", "0"), ("resnet", "1"), ("resnet", "2"),
        ("resnet", "ensemble")]
    # each row is PFAMI_NNs with one seed, the main run's first; the ResNet's last is the main attack
    # with `classifiers: 3`, the mean of the three
    main_seed = derived_seed(2308, "attack", "pfami_nns")
    seeds = classifier_seeds(main_seed, 3)
    assert [row["seed"] for row in rows[:3]] == seeds and len(set(seeds)) == 3
    runs = [pfami_nns_scores(shadow, is_member, target, resnet, seed) for seed in seeds]
    assert not np.array_equal(runs[0][1], runs[1][1])
    ensemble = pfami_nns_scores(shadow, is_member, target, {**resnet, "classifiers": 3}, main_seed)
    assert np.array_equal(ensemble[1], np.mean([run[1] for run in runs], axis=0))
    for row, (shadow_scores, scores) in zip(rows[3:], [*runs, ensemble]):
        assert row["auc"] == ablations.summary(scores, is_member)["auc"]
        threshold = fit_threshold(shadow_scores, is_member)
        assert row["threshold_fpr"] == operating_point(scores, is_member, threshold)["fpr"]
        assert row["auc"] > 0.6
    # a convex classifier scores the target with the model fitted on every shadow record: no seed in it
    assert len({row["auc"] for row in rows[:3]}) == 1 and rows[0]["auc"] > 0.6


def test_table_csv_writes_the_first_rows_columns_and_reads_back(tmp_path):
    text = ablations.table_csv([{"a": 1, "b": 0.1234567891}, {"a": 2, "b": 0.5}])
    assert text == "a,b\n1,0.123457\n2,0.5\n"
    ablations.write_table([{"mechanism": "crop", "auc": 0.75, "tpr_at_0.01_fpr": 0.125}], tmp_path / "t.csv")
    assert ablations.read_table(tmp_path / "t.csv") == [{"mechanism": "crop", "auc": 0.75, "tpr_at_0.01_fpr": 0.125}]


# --- settings and refusals -------------------------------------------------------------------


def tiny_config():
    return yaml.safe_load(TINY_CONFIG.read_text())


def test_settings_fill_defaults_and_always_include_the_final_model():
    experiment = tiny_config()["experiments"]["tiny"]
    assert ablations.ablation_settings(experiment)["snapshot_steps"] == [6, 12]
    del experiment["ablations"]
    settings = ablations.ablation_settings(experiment)
    assert settings == {"timestep_counts": [1, 2, 3], "neighbour_counts": [1, 2, 3], "mechanisms": ["crop"],
                        "snapshot_steps": [12], "records_per_part": None, "classifier_seeds": 5}


@pytest.mark.parametrize("key, value, message", [
    ("mechanisms", ["crop", "hue"], "experiments.tiny.ablations.mechanisms: 'hue' needs RGB images"),
    ("mechanisms", ["blur"], "experiments.tiny.ablations.mechanisms: unknown mechanism 'blur'"),
    ("timestep_counts", [1, 4], "experiments.tiny.ablations.timestep_counts: [4] exceed the 3 values"),
    ("neighbour_counts", [5], "experiments.tiny.ablations.neighbour_counts: [5] exceed the 3 values"),
    ("snapshot_steps", [6, 20], "experiments.tiny.ablations.snapshot_steps: [20] come after training.steps"),
    ("records_per_part", 30, "experiments.tiny.ablations.records_per_part: 30 but the main run attacks only 24"),
    ("classifier_seeds", 1, "experiments.tiny.ablations.classifier_seeds: 1 is less than the minimum of 2"),
])
def test_bad_ablation_settings_are_refused_with_the_key(key, value, message):
    config = tiny_config()
    config["experiments"]["tiny"]["ablations"][key] = value
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    assert str(error.value).startswith(message)


def test_the_schema_refuses_unknown_ablation_keys():
    config = tiny_config()
    config["experiments"]["tiny"]["ablations"]["seeds"] = [1]
    with pytest.raises(ConfigError, match="experiments.tiny.ablations"):
        check_config(config, SCHEMA)


# --- what the studies rely on ------------------------------------------------------------------

MODEL = {"family": "ddpm", "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
         "train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}
TRAINING = {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2, "checkpoint_every": 4}
IMAGES = np.random.default_rng(0).uniform(-1, 1, (16, 1, 8, 8)).astype(np.float32)


def _weights(folder):
    unet, _ = load_ddpm(folder, torch.device("cpu"))
    return unet.state_dict()


def test_snapshots_lie_on_the_full_training_trajectory(tmp_path):
    cpu = torch.device("cpu")
    train_ddpm(IMAGES, MODEL, TRAINING, 3, tmp_path / "full", tmp_path / "state.pt", cpu, [2, 6], tmp_path / "full_snaps")
    curve = train_ddpm(IMAGES, MODEL, TRAINING, 3, None, None, cpu, [2, 4], tmp_path / "early")
    assert len(curve) == 4, "training without an output folder stops after the last snapshot"
    assert sorted(path.name for path in (tmp_path / "early").iterdir()) == ["step_2", "step_4"]
    early, full_snapshot = _weights(tmp_path / "early" / "step_2"), _weights(tmp_path / "full_snaps" / "step_2")
    assert all(torch.equal(early[name], full_snapshot[name]) for name in early)
    last, final = _weights(tmp_path / "full_snaps" / "step_6"), _weights(tmp_path / "full")
    assert all(torch.equal(last[name], final[name]) for name in last)
    step_4 = _weights(tmp_path / "early" / "step_4")
    assert not all(torch.equal(step_4[name], final[name]) for name in final)


def test_a_slice_of_a_loss_tensor_equals_estimating_only_those_records():
    """Why ablations on fewer records may read the main tensors instead of querying again."""
    def eps_model(noisy, timesteps):
        return 0.5 * noisy + timesteps.float().view(-1, 1, 1, 1) / 1000

    alphas = torch.linspace(0.999, 0.5, 1000)
    images = np.random.default_rng(1).uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32)
    ids = [11, 12, 13, 21, 22, 23]
    settings = {"timesteps": [0, 300], "mechanism": "crop", "strengths": [0.9, 0.8], "seed": 5,
                "batch_size": 7, "show_progress": False}
    full = diffusion_losses(eps_model, alphas, images, ids, **settings)
    subset = [0, 3]
    alone = diffusion_losses(eps_model, alphas, images[subset], [ids[i] for i in subset], **settings)
    assert np.allclose(full[subset], alone, rtol=1e-6, atol=1e-7)


# --- the workflow --------------------------------------------------------------------------------


def planned_jobs(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {match[0]: int(match[1]) for match in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.mark.workflow
def test_ablations_reuse_the_main_run_and_report_every_study(tiny_run):
    # The tiny run made `all` and `ablations` in one Snakemake run. Forcing every ablation rule
    # again plans no main-run job: the studies reuse the main run's models and tensors.
    plan = run_snakemake(tiny_run, "-n", "--forcerun", *ablation_rules(), "--", "ablations").stdout
    jobs = planned_jobs(plan)
    assert set(jobs) - {"ablations", "total"} <= set(ablation_rules()), jobs
    # Only the brightness tensors (4, one job per record set) and the one early snapshot are new network work.
    assert jobs["estimate_mechanism_losses"] == 2 and "-crop.npz" not in plan
    assert all((tiny_run / "results" / "tiny" / "ablations" / "losses" / f"{model}-on-{records}-brightness.npz").exists()
               for records in ("target", "shadow") for model in (records, "reference"))
    assert jobs["train_snapshots"] == 1 and jobs["estimate_snapshot_losses"] == 1
    assert jobs["ablate_mechanism"] == 2  # crop (reused tensors) and brightness

    folder = tiny_run / "results" / "tiny" / "ablations"
    tables = {}
    for study in STUDIES:
        assert (folder / f"{study}.png").read_bytes()[:4] == b"\x89PNG"
        with open(folder / f"{study}.csv") as handle:
            tables[study] = list(csv.DictReader(handle))
        assert all(0.0 <= float(row["auc"]) <= 1.0 for row in tables[study])
    metrics = json.loads((tiny_run / "results" / "tiny" / "metrics.json").read_text())["attacks"]

    # The full sub-grid is the configured attack itself: same AUC as the main evaluation.
    budget = {(row["attack"], row["source"], row["timestep_count"], row["neighbour_count"]): row
              for row in tables["query_budget"]}
    assert float(budget[("pfami_met", "subset", "3", "3")]["auc"]) == pytest.approx(metrics["pfami_met"]["auc"], abs=1e-5)
    assert float(budget[("loss", "subset", "3", "0")]["auc"]) == pytest.approx(metrics["loss"]["auc"], abs=1e-5)
    assert {row["attack"] for row in tables["query_budget"] if row["source"] == "metrics.json"} == set(metrics)
    assert len(tables["timesteps"]) == 2 * 3 + 2 * 2
    assert [(row["mechanism"], row["attack"]) for row in tables["mechanisms"]] == [
        ("crop", "pfami_met"), ("crop", "pfami_nns"), ("brightness", "pfami_met"), ("brightness", "pfami_nns")]
    assert sorted({int(row["training_step"]) for row in tables["memorisation"]}) == [6, 12]
    # The first classifier is the main run's PFAMI_NNs; the last row is the ensemble of both.
    seed_rows = [(row["classifier"], row["run"]) for row in tables["classifier_seeds"]]
    assert seed_rows == [("svm", "0"), ("svm", "1"), ("resnet", "0"), ("resnet", "1"), ("resnet", "ensemble")]
    # each classifier's first row is the main run's attack
    assert float(tables["classifier_seeds"][0]["auc"]) == pytest.approx(metrics["pfami_nns"]["auc"], abs=1e-5)
    assert float(tables["classifier_seeds"][2]["auc"]) == pytest.approx(metrics["pfami_nns_resnet"]["auc"], abs=1e-5)
    assert jobs["ablate_classifier_seeds"] == 1
    snapshots = tiny_run / "results" / "tiny" / "snapshots" / "target"
    assert sorted(path.name for path in snapshots.glob("step_*")) == ["step_6"]
    with np.load(folder / "losses" / "target-on-target-brightness.npz") as tensor:
        assert tensor["losses"].shape == (24, 3, 4) and tensor["is_member"].sum() == 12
    # The studies leave the main run untouched and are themselves complete.
    assert "Nothing to be done" in run_snakemake(tiny_run, "-n", "all", "ablations").stdout
