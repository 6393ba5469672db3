# Pretrained weights: official checkpoints converted to the project format (real study), or
# small models pretrained here on natural images (demo study). Both give pretrained/{model}.pt.


rule convert_checkpoint:
    input:
        checkpoint_download,
    output:
        f"{RESULTS}/pretrained/{{model}}.pt",
    log:
        f"{RESULTS}/logs/pretrained/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrained/{{model}}.tsv"
    wildcard_constraints:
        model=alternatives(models_with_source("download")),
    conda:
        "../envs/fmdenoise.yaml"
    resources:
        **rule_resources("pretrained"),
    params:
        model=lambda wildcards: canonical(SETTINGS.models[wildcards.model].as_dict()),
    script:
        "../workflow_scripts/convert_checkpoint.py"


rule pretrain:
    output:
        f"{RESULTS}/pretrained/{{model}}.pt",
    log:
        f"{RESULTS}/logs/pretrained/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrained/{{model}}.tsv"
    wildcard_constraints:
        model=alternatives(models_with_source("pretrain")),
    conda:
        "../envs/fmdenoise.yaml"
    threads: resource("pretrained", "cpus")
    resources:
        **rule_resources("pretrained"),
    params:
        model=lambda wildcards: canonical(SETTINGS.models[wildcards.model].as_dict()),
        pretrain=canonical(SETTINGS.pretrain.as_dict()),
    script:
        "../workflow_scripts/pretrain.py"
