# Ablation studies (issue 5), for every experiment with an `ablations:` section. Not part of
# `rule all`: run `snakemake --cores all ablations`. Timesteps, strengths and query budget only
# re-score the main run's tensors; mechanisms estimate new tensors for the mechanisms other than
# the main one (whose tensors are reused); memorisation retrains the target only up to its last
# snapshot before the end (the final model is the main target model); classifier_seeds retrains
# PFAMI_NNs only.

rule ablations:
    input:
        [
            f"results/{name}/ablations/{study}.{extension}"
            for name in ABLATED_EXPERIMENTS
            for study in ablation_studies(name)
            for extension in ("csv", "png")
        ],


# The main estimation with another mechanism (the paper's strengths for it) on fewer records.
use rule estimate_losses as estimate_mechanism_losses with:
    output:
        attacked_model="results/{experiment}/ablations/losses/{records}-on-{records}-{mechanism}.npz",
        reference_model="results/{experiment}/ablations/losses/reference-on-{records}-{mechanism}.npz",
    params:
        attacked=lambda w: as_json(ablations_of(w)["records_per_part"]),
        perturbation=lambda w: as_json(
            {
                "mechanism": w.mechanism,
                "strengths": default_strengths(
                    w.mechanism,
                    count=len(experiment(w)["perturbation"]["strengths"]),
                    image_size=experiment(w)["data"]["image_size"],
                ),
            }
        ),
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/estimate_losses/{records}-records-{mechanism}.log",
    benchmark:
        "results/{experiment}/benchmarks/ablations/estimate_losses/{records}-records-{mechanism}.tsv"


rule train_snapshots:
    input:
        splits="results/{experiment}/splits.json",
    output:
        directory("results/{experiment}/snapshots/{role}"),
    params:
        data=data_section,
        model=section("model"),
        training=section("training"),
        seed=lambda w: experiment(w)["seed"],
        device=config["device"],
        steps=lambda w: as_json(snapshots_to_train(w)),
    threads: 1
    priority: 10
    resources:
        mem_mb=3000,
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/train_snapshots/{role}.log",
    benchmark:
        "results/{experiment}/benchmarks/ablations/train_snapshots/{role}.tsv"
    shell:
        "python scripts/train_model.py --data {params.data:q} --splits-file {input.splits} --role {wildcards.role} "
        "--model {params.model:q} --training {params.training:q} --seed {params.seed} --device {params.device} "
        "--threads {threads} --snapshot-steps {params.steps:q} --output {output} > {log} 2>&1"


rule estimate_snapshot_losses:
    input:
        snapshots="results/{experiment}/snapshots/target",
        splits="results/{experiment}/splits.json",
    output:
        "results/{experiment}/ablations/losses/target_step_{step}-on-target.npz",
    params:
        data=data_section,
        attacked=lambda w: as_json(ablations_of(w)["records_per_part"]),
        estimation=section("estimation"),
        perturbation=section("perturbation"),
        seed=lambda w: experiment(w)["seed"],
        device=config["device"],
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/estimate_losses/target_step_{step}-on-target.log",
    benchmark:
        "results/{experiment}/benchmarks/ablations/estimate_losses/target_step_{step}-on-target.tsv"
    shell:
        "python scripts/estimate_losses.py --data {params.data:q} --splits-file {input.splits} "
        "--records target --attacked-per-part {params.attacked:q} "
        "--model target {input.snapshots}/step_{wildcards.step} {output} "
        "--estimation {params.estimation:q} --perturbation {params.perturbation:q} "
        "--seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule ablate_subsets:
    input:
        features="results/{experiment}/fluctuations/target.npz",
        metrics="results/{experiment}/metrics.json",
    output:
        table="results/{experiment}/ablations/{study}.csv",
        figure="results/{experiment}/ablations/{study}.png",
    wildcard_constraints:
        study="timesteps|strengths|query_budget",
    params:
        settings=lambda w: as_json(ablations_of(w)),
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/{study}.log",
    shell:
        "python scripts/ablate.py {wildcards.study} --experiment {wildcards.experiment} --settings {params.settings:q} "
        "--features {input.features} --metrics {input.metrics} --table {output.table} --figure {output.figure} "
        "> {log} 2>&1"


# One job per mechanism, so that each PFAMI_NNs training starts as soon as its tensors exist.
rule ablate_mechanism:
    input:
        lambda w: list(mechanism_losses(w)[w.mechanism].values()),
    output:
        "results/{experiment}/ablations/mechanisms/{mechanism}.csv",
    params:
        settings=lambda w: as_json(ablations_of(w)),
        losses=lambda w: as_json({w.mechanism: mechanism_losses(w)[w.mechanism]}),
        nns=lambda w: as_json(experiment(w)["attacks"].get("pfami_nns")),
        min_loss=lambda w: experiment(w)["fluctuation"].get("min_loss", 1e-6),
        seed=lambda w: experiment(w)["seed"],
    threads: 1
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/mechanisms/{mechanism}.log",
    benchmark:
        "results/{experiment}/benchmarks/ablations/mechanisms/{mechanism}.tsv"
    shell:
        "python scripts/ablate.py mechanisms --experiment {wildcards.experiment} --settings {params.settings:q} "
        "--losses {params.losses:q} --nns-settings {params.nns:q} --min-loss {params.min_loss} --seed {params.seed} "
        "--threads {threads} --table {output} > {log} 2>&1"


rule ablate_mechanisms:
    input:
        lambda w: expand(
            "results/{experiment}/ablations/mechanisms/{mechanism}.csv",
            experiment=w.experiment,
            mechanism=ablations_of(w)["mechanisms"],
        ),
    output:
        table="results/{experiment}/ablations/mechanisms.csv",
        figure="results/{experiment}/ablations/mechanisms.png",
    params:
        settings=lambda w: as_json(ablations_of(w)),
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/mechanisms.log",
    shell:
        "python scripts/ablate.py mechanism_figure --experiment {wildcards.experiment} --settings {params.settings:q} "
        "--tables {input} --table {output.table} --figure {output.figure} > {log} 2>&1"


rule ablate_memorisation:
    input:
        snapshots=lambda w: list(snapshot_losses(w).values()),
        reference="results/{experiment}/losses/reference-on-target.npz",
    output:
        table="results/{experiment}/ablations/memorisation.csv",
        figure="results/{experiment}/ablations/memorisation.png",
    params:
        settings=lambda w: as_json(ablations_of(w)),
        losses=lambda w: as_json(snapshot_losses(w)),
        min_loss=lambda w: experiment(w)["fluctuation"].get("min_loss", 1e-6),
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/memorisation.log",
    shell:
        "python scripts/ablate.py memorisation --experiment {wildcards.experiment} --settings {params.settings:q} "
        "--losses {params.losses:q} --reference-losses {input.reference} --min-loss {params.min_loss} "
        "--table {output.table} --figure {output.figure} > {log} 2>&1"


# PFAMI_NNs retrained with other seeds on the main run's H, with the main run's classifier and the
# authors' ResNet (where the experiment runs pfami_nns_resnet): the training noise that the
# bootstrap intervals of metrics.json do not cover.
rule ablate_classifier_seeds:
    input:
        shadow="results/{experiment}/fluctuations/shadow.npz",
        target="results/{experiment}/fluctuations/target.npz",
    output:
        table="results/{experiment}/ablations/classifier_seeds.csv",
        figure="results/{experiment}/ablations/classifier_seeds.png",
    params:
        settings=lambda w: as_json(ablations_of(w)),
        nns=lambda w: as_json(experiment(w)["attacks"]["pfami_nns"]),
        resnet=lambda w: as_json(experiment(w)["attacks"].get("pfami_nns_resnet")),
        seed=lambda w: experiment(w)["seed"],
    threads: 1
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/ablations/classifier_seeds.log",
    benchmark:
        "results/{experiment}/benchmarks/ablations/classifier_seeds.tsv"
    shell:
        "python scripts/ablate.py classifier_seeds --experiment {wildcards.experiment} --settings {params.settings:q} "
        "--shadow-features {input.shadow} --features {input.target} --nns-settings {params.nns:q} "
        "--resnet-settings {params.resnet:q} "
        "--seed {params.seed} --threads {threads} --table {output.table} --figure {output.figure} > {log} 2>&1"
