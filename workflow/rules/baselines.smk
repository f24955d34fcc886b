# The SecMI and PIA baselines query the models themselves (a DDIM round trip, the model's own
# t = 0 noise), so they get their own estimation step; their scores then go through the same
# script, evaluation, tables and figures as every other attack.

from pfami.config import FAMILY_OF, family_settings


# One job per family queries the target model on the target records and the shadow model on the
# shadow records (the pair every attack of the family scores): torch and diffusers are imported once.
rule estimate_baselines:
    input:
        target_model=lambda w: model_dir(w, "target"),
        shadow_model=lambda w: model_dir(w, "shadow"),
        splits="results/{experiment}/splits.json",
    output:
        target="results/{experiment}/baselines/{family}-target-on-target.npz",
        shadow="results/{experiment}/baselines/{family}-shadow-on-shadow.npz",
    wildcard_constraints:
        family="secmi|pia",
    params:
        data=data_section,
        attacked=lambda w: as_json(experiment(w)["splits"].get("attacked_per_part")),
        settings=lambda w: as_json(family_settings(w.family, experiment(w)["attacks"])),
        batch_size=lambda w: experiment(w)["estimation"]["batch_size"],
        device=config["device"],
    threads: 1
    # Ahead of the PFAMI chain (see estimate_losses): the queries can start as soon as the target and
    # shadow models exist.
    priority: 8
    resources:
        mem_mb=3000,
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/estimate_baselines/{family}.log",
    benchmark:
        "results/{experiment}/benchmarks/estimate_baselines/{family}.tsv"
    shell:
        "python scripts/estimate_baselines.py --family {wildcards.family} --settings {params.settings:q} "
        "--data {params.data:q} --splits-file {input.splits} --attacked-per-part {params.attacked:q} "
        "--model target {input.target_model} {output.target} --model shadow {input.shadow_model} {output.shadow} "
        "--batch-size {params.batch_size} --device {params.device} --threads {threads} > {log} 2>&1"


rule score_baseline:
    input:
        # The query file of the attack's family: each role's model on its own records.
        shadow=lambda w: f"results/{w.experiment}/baselines/{FAMILY_OF[w.attack]}-shadow-on-shadow.npz",
        target=lambda w: f"results/{w.experiment}/baselines/{FAMILY_OF[w.attack]}-target-on-target.npz",
    output:
        "results/{experiment}/scores/{attack}.csv",
    wildcard_constraints:
        attack="|".join(FAMILY_OF),
    params:
        settings=lambda w: as_json(experiment(w)["attacks"][w.attack]),
        seed=lambda w: experiment(w)["seed"],
    priority: 8
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/score_baseline/{attack}.log",
    benchmark:
        "results/{experiment}/benchmarks/score_baseline/{attack}.tsv"
    shell:
        "python scripts/score_attack.py --attack {wildcards.attack} --settings {params.settings:q} "
        "--shadow-features {input.shadow} --target-features {input.target} --seed {params.seed} "
        "--threads {threads} --output {output} > {log} 2>&1"


# score_attack's pattern also matches these attacks' score files; they are scored from their queries.
ruleorder: score_baseline > score_attack
