# fmdenoise: does fine-tuning a natural-image Gaussian denoiser beat microscopy baselines?
# The DAG and the file contract are described in docs/workflow.md (the documentation site).
# Logic lives in src/fmdenoise; rules only wire files, params and resources to it.

from snakemake.utils import min_version, validate

from fmdenoise.config import check_config, check_output_folder, schema_path

min_version("9.0")


report: "report/workflow.rst"


# The real study by default, `--config key=value` on top of it (e.g. hagen_url=<a mirror>);
# `--configfile demo/config.yaml` replaces it (no merging).
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config.yaml"


validate(config, schema=str(schema_path()))
check_config(config, source="config")
check_output_folder(config["results"])


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrained.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
