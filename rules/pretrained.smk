# Pretrained weights: official checkpoints converted to the project format (real study), or
# small models pretrained here on natural images (demo study). Both give pretrained/{model}.pt.


rule convert_checkpoint:
    input:
        checkpoint_download,
    output:
        f"{RESULTS}/pretrained/{{model}}.pt",
    wildcard_constraints:
        model=alternatives(models_with_source("download")),
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
    log:
        f"{RESULTS}/logs/pretrained/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrained/{{model}}.tsv"
    resources:
        **rule_resources("pretrained"),
    conda:
        "../envs/fmdenoise.yaml"
    script:
        "../workflow_scripts/convert_checkpoint.py"


rule pretrain:
    output:
        f"{RESULTS}/pretrained/{{model}}.pt",
    wildcard_constraints:
        model=alternatives(models_with_source("pretrain")),
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        pretrain=canonical(config["pretrain"]),
    threads: resource("pretrained", "cpus")
    log:
        f"{RESULTS}/logs/pretrained/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrained/{{model}}.tsv"
    resources:
        **rule_resources("pretrained"),
    conda:
        "../envs/fmdenoise.yaml"
    script:
        "../workflow_scripts/pretrain.py"
