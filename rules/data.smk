# Data stage: (synthetic source) -> download -> extract -> ingest/split -> patches; a folder
# source (the published Hagen data): fetch_folder -> ingest/split -> patches.


rule synthetic_source:
    output:
        f"{RESULTS}/synthetic/{{filename}}",
    log:
        f"{RESULTS}/logs/synthetic_source/{{filename}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic_source/{{filename}}.tsv"
    retries: rule_retries("synthetic_source")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("synthetic_source")
    resources:
        **rule_resources("synthetic_source"),
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
    retries: rule_retries("download")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("download")
    resources:
        **rule_resources("download"),
    params:
        spec=lambda wildcards: canonical(config["downloads"][wildcards.archive]),
        base=download_base,
    script:
        "../workflow_scripts/download.py"


rule fetch_folder:
    output:
        files=directory(f"{RESULTS}/sources/{{folder}}/{{dataset}}"),
        sha256=f"{RESULTS}/downloads/{{folder}}/{{dataset}}.sha256",
    log:
        f"{RESULTS}/logs/download/{{folder}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{folder}}/{{dataset}}.tsv"
    retries: rule_retries("fetch_folder")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("fetch_folder")
    resources:
        **rule_resources("fetch_folder"),
    params:
        # what is fetched; where from (hagen_url, mirrors) and the pinned sha256 are read
        # from the config by the script, so that switching to a mirror reruns nothing
        globs=lambda wildcards: canonical(
            source_globs(wildcards.dataset, config["datasets"][wildcards.dataset])
        ),
        manual_path=lambda wildcards: config["downloads"][wildcards.folder][
            "manual_path"
        ],
        cache=lambda wildcards: f"{RESULTS}/downloads/{wildcards.folder}",
    script:
        "../workflow_scripts/fetch_folder.py"


rule extract:
    input:
        f"{RESULTS}/downloads/{{archive}}",
    output:
        directory(f"{RESULTS}/sources/{{archive}}"),
    log:
        f"{RESULTS}/logs/extract/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract/{{archive}}.tsv"
    retries: rule_retries("extract")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("extract")
    resources:
        **rule_resources("extract"),
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
    retries: rule_retries("ingest")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("ingest")
    resources:
        **sized_resources("ingest"),
    params:
        dataset=lambda wildcards: canonical(
            dataset_layout(wildcards.dataset, config["datasets"][wildcards.dataset])
        ),
        split=canonical(SETTINGS.split.as_dict()),
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
    retries: rule_retries("patches")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("patches")
    resources:
        **sized_resources("patches"),
    params:
        patches=canonical(SETTINGS.patches.as_dict()),
        normalization=canonical(SETTINGS.normalization.as_dict()),
    script:
        "../workflow_scripts/patches.py"
