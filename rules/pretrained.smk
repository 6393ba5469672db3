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
    retries: rule_retries("convert_checkpoint")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("convert_checkpoint")
    resources:
        **rule_resources("convert_checkpoint"),
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
    retries: rule_retries("pretrain")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("pretrain")
    resources:
        **rule_resources("pretrain"),
    params:
        model=lambda wildcards: canonical(SETTINGS.models[wildcards.model].as_dict()),
        pretrain=canonical(SETTINGS.pretrain.as_dict()),
    script:
        "../workflow_scripts/pretrain.py"
