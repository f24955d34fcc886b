rule train_model:
    input:
        splits="results/{experiment}/splits.json",
        # An audit's target model, trained elsewhere (model.pretrained), is adopted instead of trained.
        pretrained=lambda w: [experiment(w)["model"]["pretrained"]]
        if w.role == "target" and "pretrained" in experiment(w)["model"]
        else [],
        # model.family ldm: every role's latent U-Net is trained under the experiment's one autoencoder.
        autoencoder=lambda w: ["results/{experiment}/autoencoder"] if experiment(w)["model"]["family"] == "ldm" else [],
    output:
        directory("results/{experiment}/models/{role}"),
    params:
        data=data_section,
        model=section("model"),
        training=section("training"),
        seed=lambda w: experiment(w)["seed"],
        device=config["device"],
        # Outside the output folder: Snakemake clears outputs before a rerun, the state must survive.
        state="results/{experiment}/train_state/{role}.pt",
        autoencoder=lambda w, input: f"--autoencoder {input.autoencoder}" if input.autoencoder else "",
    # One thread per job: jobs run side by side, which beats threading these small networks.
    threads: 1
    # Training heads the longest chain (train -> estimate -> fluctuate -> attack): start it before
    # anything else, the diffusion models (minutes) before the VAEs (seconds).
    priority: lambda w: 10 if experiment(w)["model"]["family"] in DIFFUSION_FAMILIES else 9
    resources:
        mem_mb=3000,
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/train_model/{role}.log",
    benchmark:
        "results/{experiment}/benchmarks/train_model/{role}.tsv"
    shell:
        "python scripts/train_model.py --data {params.data:q} --splits-file {input.splits} --role {wildcards.role} "
        "--model {params.model:q} --training {params.training:q} --seed {params.seed} --device {params.device} "
        "--threads {threads} --output {output} --state {params.state} {params.autoencoder} > {log} 2>&1"


# model.family ldm: the first stage every role shares, trained once on records outside all six splits.
rule train_autoencoder:
    input:
        splits="results/{experiment}/splits.json",
    output:
        directory("results/{experiment}/autoencoder"),
    params:
        data=data_section,
        autoencoder=lambda w: as_json(experiment(w)["model"]["autoencoder"]),
        seed=lambda w: experiment(w)["seed"],
        device=config["device"],
        # Outside the output folder: Snakemake clears outputs before a rerun, the state must survive.
        state="results/{experiment}/train_state/autoencoder.pt",
    threads: 1
    # The role models wait for it: start it first.
    priority: 20
    resources:
        mem_mb=3000,
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/train_autoencoder.log",
    benchmark:
        "results/{experiment}/benchmarks/train_autoencoder.tsv"
    shell:
        "python scripts/train_autoencoder.py --data {params.data:q} --splits-file {input.splits} "
        "--autoencoder {params.autoencoder:q} --seed {params.seed} --device {params.device} --threads {threads} "
        "--output {output} --state {params.state} > {log} 2>&1"
