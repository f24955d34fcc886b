rule split_dataset:
    output:
        "results/{experiment}/splits.json",
    params:
        data=section("data"),
        splits=section("splits"),
        seed=lambda w: experiment(w)["seed"],
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/split_dataset.log",
    shell:
        "python scripts/split_dataset.py --data {params.data:q} --splits {params.splits:q} "
        "--seed {params.seed} --output {output} > {log} 2>&1"
