# Data stage: (synthetic source) -> download -> extract -> ingest/split -> patches.


rule synthetic_source:
    output:
        f"{RESULTS}/synthetic/{{filename}}",
    params:
        cfg=canonical(config.get("synthetic_source")),
    log:
        f"{RESULTS}/logs/synthetic_source/{{filename}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_source/{{filename}}.tsv"
    resources:
        **rule_resources("ingest"),
    conda:
        "../envs/fmdenoise.yaml"
    script:
        "../workflow_scripts/synthetic_source.py"


rule download:
    input:
        download_local_input,
    output:
        file=f"{RESULTS}/downloads/{{archive}}",
        sha256=f"{RESULTS}/downloads/{{archive}}.sha256",
    params:
        spec=lambda wildcards: canonical(config["downloads"][wildcards.archive]),
        base=RESULTS,
    log:
        f"{RESULTS}/logs/download/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{archive}}.tsv"
    retries: 1
    resources:
        **rule_resources("download"),
    conda:
        "../envs/fmdenoise.yaml"
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
    resources:
        **rule_resources("ingest"),
    conda:
        "../envs/fmdenoise.yaml"
    script:
        "../workflow_scripts/extract.py"


rule ingest:
    input:
        ingest_source,
    output:
        directory(f"{RESULTS}/data/{{dataset}}"),
    params:
        dataset=lambda wildcards: canonical(config["datasets"][wildcards.dataset]),
        split=canonical(config["split"]),
    log:
        f"{RESULTS}/logs/ingest/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest/{{dataset}}.tsv"
    resources:
        **rule_resources("ingest"),
    conda:
        "../envs/fmdenoise.yaml"
    script:
        "../workflow_scripts/ingest.py"


rule patches:
    input:
        f"{RESULTS}/data/{{dataset}}",
    output:
        arrays=patch_files("{dataset}"),
        info=f"{RESULTS}/patches/{{dataset}}/patches.json",
    params:
        patches=canonical(config["patches"]),
        normalization=canonical(config["normalization"]),
    log:
        f"{RESULTS}/logs/patches/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/patches/{{dataset}}.tsv"
    resources:
        **rule_resources("patches"),
    conda:
        "../envs/fmdenoise.yaml"
    script:
        "../workflow_scripts/patches.py"
