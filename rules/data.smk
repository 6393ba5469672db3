# Data stage: (synthetic source) -> download -> extract -> ingest/split -> patches.


rule synthetic_source:
    output:
        f"{RESULTS}/synthetic/{{filename}}",
    log:
        f"{RESULTS}/logs/synthetic_source/{{filename}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_source/{{filename}}.tsv"
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **rule_resources("ingest"),
    params:
        cfg=canonical(config.get("synthetic_source")),
    script:
        "../workflow_scripts/synthetic_source.py"


rule download:
    input:
        download_local_input,
    output:
        file=f"{RESULTS}/downloads/{{archive}}",
        sha256=f"{RESULTS}/downloads/{{archive}}.sha256",
    log:
        f"{RESULTS}/logs/download/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{archive}}.tsv"
    retries: retries("download", 1)
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **rule_resources("download"),
    params:
        spec=lambda wildcards: canonical(config["downloads"][wildcards.archive]),
        base=download_base,
    script:
        "../workflow_scripts/download.py"


rule extract:
    input:
        f"{RESULTS}/downloads/{{archive}}",
    output:
        directory(f"{RESULTS}/sources/{{archive}}"),
    log:
        f"{RESULTS}/logs/extract/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract/{{archive}}.tsv"
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **rule_resources("ingest"),
    script:
        "../workflow_scripts/extract.py"


rule ingest:
    input:
        ingest_source,
    output:
        directory(f"{RESULTS}/data/{{dataset}}"),
    log:
        f"{RESULTS}/logs/ingest/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest/{{dataset}}.tsv"
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **sized_resources("ingest"),
    params:
        dataset=lambda wildcards: canonical(
            dataset_layout(wildcards.dataset, config["datasets"][wildcards.dataset])
        ),
        split=canonical(config["split"]),
    script:
        "../workflow_scripts/ingest.py"


rule patches:
    input:
        f"{RESULTS}/data/{{dataset}}",
    output:
        arrays=patch_files("{dataset}"),
        info=f"{RESULTS}/patches/{{dataset}}/patches.json",
    log:
        f"{RESULTS}/logs/patches/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/patches/{{dataset}}.tsv"
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **sized_resources("patches"),
    params:
        patches=canonical(config["patches"]),
        normalization=canonical(config["normalization"]),
    script:
        "../workflow_scripts/patches.py"
