# The audit's checks beside the attacks: the blind baseline (a classifier on the records alone, that
# never queries a model) and the records the best attack exposes most.


rule blind_baseline:
    input:
        splits="results/{experiment}/splits.json",
    output:
        "results/{experiment}/blind_baseline/scores.csv",
    params:
        data=data_section,
        attacked=lambda w: as_json(experiment(w)["splits"].get("attacked_per_part")),
        seed=lambda w: experiment(w)["seed"],
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/blind_baseline.log",
    benchmark:
        "results/{experiment}/benchmarks/blind_baseline.tsv"
    shell:
        "python scripts/blind_baseline.py --data {params.data:q} --splits-file {input.splits} "
        "--attacked-per-part {params.attacked:q} --seed {params.seed} --output {output} > {log} 2>&1"


# The ranking is reported, not used to choose anything (pfami/exposure.py).
rule exposed_records:
    input:
        scores=lambda w: expand("results/{experiment}/scores/{attack}.csv", experiment=w.experiment, attack=attacks_of(w)),
        blind_baseline="results/{experiment}/blind_baseline/scores.csv",
        splits="results/{experiment}/splits.json",
    output:
        figure=report(
            "results/{experiment}/figures/exposed_records.png",
            caption="../report/exposed_records.rst",
            category="{experiment}",
        ),
        table="results/{experiment}/exposed_records.csv",
    params:
        data=data_section,
        shown=EXPOSED_RECORDS_SHOWN,
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/exposed_records.log",
    shell:
        "python scripts/exposed_records.py --experiment {wildcards.experiment} --scores {input.scores} "
        "--blind-baseline-scores {input.blind_baseline} --data {params.data:q} --splits-file {input.splits} "
        "--count {params.shown} --figure {output.figure} --table {output.table} > {log} 2>&1"
