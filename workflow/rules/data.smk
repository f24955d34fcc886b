rule split_dataset:
    input:
        # An audit's given member / non-member index files of the target model.
        given=lambda w: [experiment(w)["splits"][key] for key in GIVEN_SPLIT_KEYS if key in experiment(w)["splits"]],
    output:
        "results/{experiment}/splits.json",
    params:
        data=section("data"),
        splits=section("splits"),
        seed=lambda w: experiment(w)["seed"],
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/split_dataset.log",
    shell:
        "python scripts/split_dataset.py --data {params.data:q} --splits {params.splits:q} "
        "--seed {params.seed} --output {output} > {log} 2>&1"
