# Training stage: one job per grid cell; selection on validation; the scratch and
# augmentation studies at the selected (loss, lr).


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RESULTS}/runs/{RUN}/model.pt",
        curve=f"{RESULTS}/runs/{RUN}/curve.csv",
        run=f"{RESULTS}/runs/{RUN}/run.json",
    log:
        f"{RESULTS}/logs/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{RUN}.tsv"
    retries: retries("train", 2)
    conda:
        "../envs/fmdenoise.yaml"
    threads: resource("train", "cpus")
    resources:
        **train_resources(),
    params:
        cell=train_cell,
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        training=canonical(config["training"]),
    script:
        "../workflow_scripts/train.py"


checkpoint select:
    input:
        select_inputs,
    output:
        f"{RESULTS}/selected/{{model}}/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/select/{{model}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/select/{{model}}/{{dataset}}.tsv"
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **rule_resources("default"),
    script:
        "../workflow_scripts/select.py"


rule studies:
    input:
        study_runs,
    output:
        f"{RESULTS}/studies/{{model}}/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/studies/{{model}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/studies/{{model}}/{{dataset}}.tsv"
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **rule_resources("default"),
    script:
        "../workflow_scripts/studies.py"
