rule split_dataset:
    output:
        "results/{experiment}/splits.json",
    params:
        data=section("data"),
        splits=section("splits"),
        seed=lambda w: experiment(w)["seed"],
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/split_dataset.log",
    shell:
        "{PYTHON} scripts/split_dataset.py --data {params.data:q} --splits {params.splits:q} "
        "--seed {params.seed} --output {output} > {log} 2>&1"
