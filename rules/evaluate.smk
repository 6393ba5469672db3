# Evaluation: test-set predictions of every method, per-image metrics, tables.


rule predict:
    input:
        unpack(predict_inputs),
    output:
        directory(f"{RESULTS}/predictions/{{method}}/{{dataset}}"),
    log:
        f"{RESULTS}/logs/predict/{{method}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{method}}/{{dataset}}.tsv"
    retries: rule_retries("predict")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("predict")
    resources:
        **sized_resources("predict"),
    params:
        method=method_spec,
        normalization=canonical(SETTINGS.normalization.as_dict()),
        tile=method_tile,
        overlap=SETTINGS.evaluation.overlap,
    script:
        "../workflow_scripts/predict.py"


rule metrics:
    input:
        data=f"{RESULTS}/data/{{dataset}}",
        predictions=f"{RESULTS}/predictions/{{method}}/{{dataset}}",
    output:
        f"{RESULTS}/metrics/{{method}}/{{dataset}}.csv",
    log:
        f"{RESULTS}/logs/metrics/{{method}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metrics/{{method}}/{{dataset}}.tsv"
    retries: rule_retries("metrics")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("metrics")
    resources:
        **sized_resources("metrics"),
    params:
        normalization=canonical(SETTINGS.normalization.as_dict()),
    script:
        "../workflow_scripts/metrics.py"


rule table_main:
    input:
        metrics=all_metrics,
        seeds=seed_metrics,
        runs=selected_run_files,
    output:
        csv=report(
            f"{RESULTS}/tables/main.csv",
            caption="../report/table_main.rst",
            category="Tables",
            labels={"table": "main"},
        ),
        md=f"{RESULTS}/tables/main.md",
        tex=f"{RESULTS}/tables/main.tex",
    log:
        f"{RESULTS}/logs/tables/main.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/main.tsv"
    retries: rule_retries("table_main")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("table_main")
    resources:
        **rule_resources("table_main"),
    params:
        finetuned=FINETUNE_MODELS,
        seed=SETTINGS.evaluation.seed,
    script:
        "../workflow_scripts/table_main.py"


rule transfer_predict:
    input:
        unpack(transfer_inputs),
    output:
        temp(directory(f"{RESULTS}/transfer/{{model}}/{{dataset}}.predictions")),
    log:
        f"{RESULTS}/logs/transfer_predict/{{model}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/transfer_predict/{{model}}/{{dataset}}.tsv"
    retries: rule_retries("transfer_predict")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("transfer_predict")
    resources:
        **transfer_resources("transfer_predict"),
    params:
        method=lambda wildcards: {
            "kind": "finetuned",
            "noise_level": canonical(method_noise_level(SETTINGS, wildcards.model)),
        },
        targets=lambda wildcards: transfer_targets(SETTINGS, wildcards.dataset),
        normalization=canonical(SETTINGS.normalization.as_dict()),
        tile=lambda wildcards: inference_tile(SETTINGS, wildcards.model),
        overlap=SETTINGS.evaluation.overlap,
    script:
        "../workflow_scripts/transfer_predict.py"


rule transfer:
    input:
        unpack(transfer_score_inputs),
    output:
        f"{RESULTS}/transfer/{{model}}/{{dataset}}.csv",
    log:
        f"{RESULTS}/logs/transfer/{{model}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/transfer/{{model}}/{{dataset}}.tsv"
    retries: rule_retries("transfer")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("transfer")
    resources:
        **transfer_resources("transfer"),
    params:
        targets=lambda wildcards: transfer_targets(SETTINGS, wildcards.dataset),
        normalization=canonical(SETTINGS.normalization.as_dict()),
    script:
        "../workflow_scripts/transfer.py"


rule table_transfer:
    input:
        unpack(transfer_table_inputs),
    output:
        csv=report(
            f"{RESULTS}/tables/transfer.csv",
            caption="../report/table_transfer.rst",
            category="Tables",
            labels={"table": "transfer"},
        ),
        md=f"{RESULTS}/tables/transfer.md",
        tex=f"{RESULTS}/tables/transfer.tex",
    log:
        f"{RESULTS}/logs/tables/transfer.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/transfer.tsv"
    retries: rule_retries("table_transfer")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("table_transfer")
    resources:
        **rule_resources("table_transfer"),
    params:
        finetuned=FINETUNE_MODELS,
    script:
        "../workflow_scripts/table_transfer.py"


rule table_validation:
    input:
        selected=lambda wildcards: [
            f"{RESULTS}/selected/{m}/{d}.json"
            for m in SETTINGS.models
            for d in SETTINGS.datasets
        ],
        studies=study_files,
    output:
        csv=report(
            f"{RESULTS}/tables/{{table}}.csv",
            caption="../report/table_validation.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=f"{RESULTS}/tables/{{table}}.md",
        tex=f"{RESULTS}/tables/{{table}}.tex",
    log:
        f"{RESULTS}/logs/tables/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/{{table}}.tsv"
    wildcard_constraints:
        table="hyperparameters|scratch|augmentation",
    retries: rule_retries("table_validation")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("table_validation")
    resources:
        **rule_resources("table_validation"),
    script:
        "../workflow_scripts/table_validation.py"


rule table_cost:
    input:
        unpack(cost_table_inputs),
    output:
        csv=report(
            f"{RESULTS}/tables/cost.csv",
            caption="../report/table_cost.rst",
            category="Tables",
            labels={"table": "cost"},
        ),
        md=f"{RESULTS}/tables/cost.md",
        tex=f"{RESULTS}/tables/cost.tex",
    log:
        f"{RESULTS}/logs/tables/cost.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/cost.tsv"
    retries: rule_retries("table_cost")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("table_cost")
    resources:
        **rule_resources("table_cost"),
    script:
        "../workflow_scripts/table_cost.py"


rule answers:
    input:
        unpack(answers_inputs),
    output:
        report(
            f"{RESULTS}/answers.md",
            caption="../report/answers.rst",
            category="Answers",
        ),
    log:
        f"{RESULTS}/logs/answers.log",
    benchmark:
        f"{RESULTS}/benchmarks/answers.tsv"
    retries: rule_retries("answers")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("answers")
    resources:
        **rule_resources("answers"),
    params:
        finetuned=FINETUNE_MODELS,
    script:
        "../workflow_scripts/answers.py"


rule table_search:
    input:
        unpack(search_table_inputs),
    output:
        csv=report(
            f"{RESULTS}/tables/search.csv",
            caption="../report/table_search.rst",
            category="Tables",
            labels={"table": "search"},
        ),
        spend=f"{RESULTS}/tables/search_spend.csv",
        md=f"{RESULTS}/tables/search.md",
        tex=f"{RESULTS}/tables/search.tex",
    log:
        f"{RESULTS}/logs/tables/search.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/search.tsv"
    retries: rule_retries("table_search")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("table_search")
    resources:
        **rule_resources("table_search"),
    params:
        steps=SETTINGS.training.steps,
    script:
        "../workflow_scripts/table_search.py"
