# Training stage: one job per grid cell; selection on validation; the scratch and
# augmentation studies at the selected (loss, lr). With grid.search: halving the main sweep
# trains in rungs (rule rung, checkpoint promote) and only the last rung's cells reach train.
# Datasets outside grid.sweep_datasets train one run per seed at the cell selected on the first
# swept dataset (rules/common.smk: alive_runs).


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
    retries: rule_retries("train")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("train")
    resources:
        **rule_resources("train"),
    params:
        cell=train_cell,
        model=lambda wildcards: canonical(SETTINGS.models[wildcards.model].as_dict()),
        training=canonical(SETTINGS.training.as_dict()),
    script:
        "../workflow_scripts/train.py"


rule rung:
    input:
        unpack(rung_inputs),
    output:
        state=f"{RESULTS}/runs/{RUN}/rung{{rung}}.pt",
        summary=f"{RESULTS}/runs/{RUN}/rung{{rung}}.json",
    log:
        f"{RESULTS}/logs/rung/{RUN}/rung{{rung}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rung/{RUN}/rung{{rung}}.tsv"
    retries: rule_retries("rung")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("rung")
    resources:
        **rule_resources("rung"),
    params:
        cell=train_cell,
        model=lambda wildcards: canonical(SETTINGS.models[wildcards.model].as_dict()),
        training=canonical(SETTINGS.training.as_dict()),
        budget=lambda wildcards: BUDGETS[int(wildcards.rung)],
    script:
        "../workflow_scripts/rung.py"


checkpoint promote:
    input:
        rung_summaries,
    output:
        f"{RESULTS}/search/{{model}}/{{dataset}}/rung{{rung}}.json",
    log:
        f"{RESULTS}/logs/promote/{{model}}/{{dataset}}/rung{{rung}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/promote/{{model}}/{{dataset}}/rung{{rung}}.tsv"
    retries: rule_retries("promote")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("promote")
    resources:
        **rule_resources("promote"),
    params:
        budget=lambda wildcards: BUDGETS[int(wildcards.rung)],
        eta=SETTINGS.grid.halving.eta,
        stratify=lambda wildcards: stratum(SETTINGS, int(wildcards.rung)),
        order=grid_order(SETTINGS),
    script:
        "../workflow_scripts/promote.py"


checkpoint select:
    input:
        unpack(select_inputs),
    output:
        f"{RESULTS}/selected/{{model}}/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/select/{{model}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/select/{{model}}/{{dataset}}.tsv"
    retries: rule_retries("select")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("select")
    resources:
        **rule_resources("select"),
    params:
        keep_weights=SETTINGS.grid.keep_weights,
        # how the study's test-set inference applies the model (the record denoise uses)
        inference=lambda wildcards: canonical(
            inference_settings(SETTINGS, wildcards.model).as_dict()
        ),
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
    retries: rule_retries("studies")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("studies")
    resources:
        **rule_resources("studies"),
    script:
        "../workflow_scripts/studies.py"
