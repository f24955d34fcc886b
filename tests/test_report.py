"""The summary's PFAMI-vs-best-baseline line, on hand-made metrics."""

from pfami.report import (BLIND_WARNING, blind_baseline_line, comparison_line, intervals_overlap, sampler_line,
                          summary_csv, summary_markdown)
from tests.conftest import modules_imported_by


def result(auc, auc_ci, asr=0.5, asr_ci=(0.45, 0.55), tpr=0.0, tpr_ci=(0.0, 0.02)):
    return {"auc": auc, "asr": asr, "tpr_at_0.01_fpr": tpr, "tpr_at_0.001_fpr": 0.0, "threshold_fpr": 0.5, "eps_lb": 0.0,
            "ci95": {"auc": list(auc_ci), "asr": list(asr_ci), "tpr_at_0.01_fpr": list(tpr_ci),
                     "tpr_at_0.001_fpr": [0.0, 0.0]},
            "queries_per_record": {"target": 2, "reference": 0}}


ATTACKS = {
    "pfami_met": result(0.70, (0.66, 0.74), asr=0.60, asr_ci=(0.56, 0.64), tpr=0.05, tpr_ci=(0.01, 0.09)),
    "pfami_nns": result(0.80, (0.76, 0.84), asr=0.58, asr_ci=(0.54, 0.62), tpr=0.02, tpr_ci=(0.0, 0.04)),
    # The one-strength variant is not part of "PFAMI" in the comparison, however good it is.
    "pfami_met_single": result(0.99, (0.98, 1.0), asr=0.99, asr_ci=(0.98, 1.0), tpr=0.9, tpr_ci=(0.8, 1.0)),
    "loss": result(0.60, (0.56, 0.64), asr=0.62, asr_ci=(0.58, 0.66), tpr=0.03, tpr_ci=(0.01, 0.05)),
    "pia": result(0.65, (0.61, 0.69), asr=0.52, asr_ci=(0.48, 0.56), tpr=0.10, tpr_ci=(0.06, 0.14)),
}


def test_intervals_overlap():
    assert intervals_overlap([0.1, 0.3], [0.3, 0.5]) and intervals_overlap([0.2, 0.4], [0.0, 1.0])
    assert not intervals_overlap([0.1, 0.29], [0.3, 0.5]) and not intervals_overlap([0.6, 0.7], [0.3, 0.5])


def test_comparison_picks_the_best_of_each_side_per_metric():
    line = comparison_line(ATTACKS)
    assert line.startswith("PFAMI vs the best baseline (per metric): ")
    auc, asr, tpr = line.removesuffix(".").split(": ", 1)[1].split("; ")
    assert auc == "AUC higher: PFAMI_NNs 0.800 vs PIA 0.650 (intervals do not overlap)"
    assert asr == "ASR lower: PFAMI_Met 0.600 vs Loss 0.620 (intervals overlap)"
    assert tpr == "TPR@1%FPR lower: PFAMI_Met 0.050 vs PIA 0.100 (intervals overlap)"


def test_no_comparison_without_both_sides():
    assert comparison_line({"pfami_met": ATTACKS["pfami_met"]}) == ""
    assert comparison_line({"loss": ATTACKS["loss"], "pfami_met_single": ATTACKS["pfami_met_single"]}) == ""


def test_summary_has_a_row_per_attack_and_the_comparison():
    metrics = {"records": {"target_members": 10, "target_non_members": 10},
               "records_with_clamped_loss": {"target": 0, "shadow": 0}, "attacks": ATTACKS}
    markdown = summary_markdown({"exp": metrics}, {"exp": "a test"})
    assert "| PIA | 0.650 [0.610, 0.690]" in markdown and "| Loss |" in markdown
    # the empirical epsilon column, and the most that 10 + 10 records can prove at the default delta
    assert "| FPR at ASR threshold | eps_lb | Queries |" in markdown and "| 0.500 | 0.00 | 2 + 0 |" in markdown
    assert "eps_lb at delta = 1e-05, at most 1.05 with these record counts." in markdown
    assert comparison_line(ATTACKS) in markdown.splitlines()


def test_a_diffusion_block_says_which_samplers_were_varied_and_why_the_scores_hold():
    metrics = {"records": {"target_members": 10, "target_non_members": 10},
               "records_with_clamped_loss": {"target": 0, "shadow": 0}, "attacks": ATTACKS}
    line = sampler_line({"samplers": ["ddim", "pndm"], "inference_steps": {"ddim": 7}})
    assert line.startswith("Samplers varied: DDIM (7 steps), PNDM (50 steps);")  # PNDM's steps: the default
    assert "DDPM" not in line and "query the noise predictor" in line
    assert sampler_line({}).startswith("Samplers varied: DDPM (100 steps), DDIM (50 steps), PNDM (50 steps);")
    markdown = summary_markdown({"ddpm": metrics, "vae": metrics}, {}, {"ddpm": {}})
    diffusion_block, vae_block = markdown.split("## vae")
    assert sampler_line({}) in diffusion_block.splitlines() and "Samplers varied" not in vae_block


def test_the_blind_baseline_has_a_row_and_warns_only_when_its_interval_is_above_chance():
    shifted = {**result(0.93, (0.5001, 0.97)), "queries_per_record": {"target": 0, "reference": 0}}
    matched = {**result(0.55, (0.50, 0.61)), "queries_per_record": {"target": 0, "reference": 0}}
    assert blind_baseline_line(shifted).startswith(BLIND_WARNING) and "AUC 0.930 [0.500, 0.970]" in blind_baseline_line(shifted)
    assert "Warning" not in blind_baseline_line(matched) and "does not tell the members" in blind_baseline_line(matched)
    base = {"records": {"target_members": 10, "target_non_members": 10},
            "records_with_clamped_loss": {"target": 0, "shadow": 0}, "attacks": ATTACKS}
    markdown = summary_markdown({"shifted": {**base, "blind_baseline": shifted}, "matched": {**base, "blind_baseline": matched},
                                 "old": base}, {})
    shifted_block, matched_block, old_block = markdown.split("## ")[1:]
    lines = shifted_block.splitlines()
    row = next(index for index, line in enumerate(lines) if line.startswith("| Blind baseline"))
    assert lines[row].endswith("| 0.500 | 0.00 | 0 + 0 |") and lines[row - 1].startswith("| PIA |")
    assert lines[row + 2] == blind_baseline_line(shifted)
    assert BLIND_WARNING not in matched_block and blind_baseline_line(matched) in matched_block
    assert "| Blind baseline" not in old_block  # metrics from before the blind baseline: no row, no sentence
    csv = summary_csv({"shifted": {**base, "blind_baseline": shifted}})
    assert csv.splitlines()[-1].startswith("shifted,blind_baseline,0.93,0.5001,0.97,") and csv.endswith(",0,0\n")


def test_the_steps_that_only_read_results_import_no_scikit_learn():
    # The figures, the summary and the audit document read what evaluate wrote; importing scikit-learn
    # would cost each of these jobs about 0.6 CPU-s for nothing.
    assert "sklearn" not in modules_imported_by("import pfami.report, pfami.plots, pfami.audit_document")
