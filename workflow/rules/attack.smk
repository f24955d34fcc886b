# The two loss tensors that H of one role's records needs, the attacked model's and the reference
# model's (reference-on-{records}: with a crossed reference, the other role's model), from one job:
# importing torch and diffusers costs seconds per process.
rule estimate_losses:
    wildcard_constraints:
        experiment=OWN_REFERENCE_PATTERN,
    input:
        attacked_model=lambda w: model_dir(w, w.records),
        reference_model=reference_model_dir,
        splits="results/{experiment}/splits.json",
    output:
        attacked_model="results/{experiment}/losses/{records}-on-{records}.npz",
        reference_model="results/{experiment}/losses/reference-on-{records}.npz",
    params:
        data=data_section,
        attacked=lambda w: as_json(experiment(w)["splits"].get("attacked_per_part")),
        estimation=section("estimation"),
        perturbation=section("perturbation"),
        seed=lambda w: experiment(w)["seed"],
        family=lambda w: experiment(w)["model"]["family"],
        device=config["device"],
        reference_model=lambda w, input, output: f"--model reference {input.reference_model} {output.reference_model}"
        if "reference_model" in output.keys()
        else "",
    threads: 1
    # Priorities put long jobs first, so that none is left running alone at the end: training
    # (10, VAEs 9), the baseline queries (8: they need only the target and shadow models), this
    # chain (6), then sample grids and reports (0).
    priority: 6
    resources:
        mem_mb=3000,
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/estimate_losses/{records}-records.log",
    benchmark:
        "results/{experiment}/benchmarks/estimate_losses/{records}-records.tsv"
    shell:
        "python scripts/estimate_losses.py --data {params.data:q} --splits-file {input.splits} "
        "--records {wildcards.records} --attacked-per-part {params.attacked:q} "
        "--model {wildcards.records} {input.attacked_model} {output.attacked_model} {params.reference_model} "
        "--family {params.family} --estimation {params.estimation:q} --perturbation {params.perturbation:q} "
        "--seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


# A DP experiment of the privacy study whose reference model is shared: only the attacked model's losses
# (the reference's are its owner's, see reference_losses).
use rule estimate_losses as estimate_attacked_losses with:
    wildcard_constraints:
        experiment=SHARED_REFERENCE_PATTERN,
    input:
        attacked_model=lambda w: model_dir(w, w.records),
        splits="results/{experiment}/splits.json",
    output:
        attacked_model="results/{experiment}/losses/{records}-on-{records}.npz",


rule extract_fluctuations:
    input:
        attacked_model="results/{experiment}/losses/{records}-on-{records}.npz",
        reference_model=reference_losses,
    output:
        "results/{experiment}/fluctuations/{records}.npz",
    params:
        min_loss=lambda w: experiment(w)["fluctuation"].get("min_loss", 1e-6),
    # The PFAMI chain (see estimate_losses).
    priority: 6
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/extract_fluctuations/{records}.log",
    shell:
        "python scripts/extract_fluctuations.py --target-model-losses {input.attacked_model} "
        "--reference-model-losses {input.reference_model} --min-loss {params.min_loss} --output {output} > {log} 2>&1"


rule score_attack:
    input:
        shadow="results/{experiment}/fluctuations/shadow.npz",
        target="results/{experiment}/fluctuations/target.npz",
    output:
        "results/{experiment}/scores/{attack}.csv",
    params:
        settings=lambda w: as_json(experiment(w)["attacks"][w.attack]),
        seed=lambda w: experiment(w)["seed"],
    # The PFAMI chain (see estimate_losses); the authors' ResNet (pfami_nns_resnet) is its last long job.
    priority: 6
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/score_attack/{attack}.log",
    benchmark:
        "results/{experiment}/benchmarks/score_attack/{attack}.tsv"
    shell:
        "python scripts/score_attack.py --attack {wildcards.attack} --settings {params.settings:q} "
        "--shadow-features {input.shadow} --target-features {input.target} --seed {params.seed} "
        "--threads {threads} --output {output} > {log} 2>&1"


rule evaluate:
    input:
        scores=lambda w: expand("results/{experiment}/scores/{attack}.csv", experiment=w.experiment, attack=attacks_of(w)),
        shadow="results/{experiment}/fluctuations/shadow.npz",
        target="results/{experiment}/fluctuations/target.npz",
        blind_baseline="results/{experiment}/blind_baseline/scores.csv",
    output:
        metrics="results/{experiment}/metrics.json",
        roc=directory("results/{experiment}/roc"),
    params:
        resamples=lambda w: experiment(w)["evaluation"]["bootstrap_resamples"],
        seed=lambda w: experiment(w)["seed"],
        attacks=section("attacks"),
        delta=lambda w: evaluation_delta(experiment(w)),
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/evaluate.log",
    shell:
        "python scripts/evaluate.py --experiment {wildcards.experiment} --scores {input.scores} "
        "--target-features {input.target} --shadow-features {input.shadow} --blind-baseline-scores {input.blind_baseline} "
        "--bootstrap-resamples {params.resamples} --seed {params.seed} --delta {params.delta} "
        "--attack-settings {params.attacks:q} --output {output.metrics} --roc-dir {output.roc} "
        "> {log} 2>&1"
