rule split_dataset:
    input:
        # An audit's given member / non-member index files or image folders of the target model.
        given=given_record_inputs,
    output:
        "results/{experiment}/splits.json",
    params:
        data=data_section,
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
