# Figures for the paper and the Snakemake report (`snakemake --report report.html`).


rule figure_learning_curves:
    input:
        study_files,
    output:
        report(
            f"{RESULTS}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
            labels={"figure": "learning curves"},
        ),
    log:
        f"{RESULTS}/logs/figures/learning_curves.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/learning_curves.tsv"
    retries: rule_retries("figure_learning_curves")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("figure_learning_curves")
    resources:
        **rule_resources("figure_learning_curves"),
    script:
        "../workflow_scripts/figure_learning_curves.py"


rule figure_transfer:
    input:
        f"{RESULTS}/tables/transfer.csv",
    output:
        report(
            f"{RESULTS}/figures/transfer.png",
            caption="../report/transfer.rst",
            category="Figures",
            labels={"figure": "transfer"},
        ),
    log:
        f"{RESULTS}/logs/figures/transfer.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/transfer.tsv"
    retries: rule_retries("figure_transfer")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("figure_transfer")
    resources:
        **rule_resources("figure_transfer"),
    script:
        "../workflow_scripts/figure_transfer.py"


rule figure_psnr_vs_cost:
    input:
        main=f"{RESULTS}/tables/main.csv",
        cost=f"{RESULTS}/tables/cost.csv",
    output:
        report(
            f"{RESULTS}/figures/psnr_vs_cost.png",
            caption="../report/psnr_vs_cost.rst",
            category="Figures",
            labels={"figure": "PSNR vs cost"},
        ),
    log:
        f"{RESULTS}/logs/figures/psnr_vs_cost.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/psnr_vs_cost.tsv"
    retries: rule_retries("figure_psnr_vs_cost")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("figure_psnr_vs_cost")
    resources:
        **rule_resources("figure_psnr_vs_cost"),
    script:
        "../workflow_scripts/figure_psnr_vs_cost.py"


rule figure_examples:
    input:
        unpack(example_inputs),
    output:
        report(
            f"{RESULTS}/figures/examples/{{dataset}}.png",
            caption="../report/examples.rst",
            category="Figures",
            subcategory="Example crops",
            labels={"figure": "example crops", "dataset": "{dataset}"},
        ),
    log:
        f"{RESULTS}/logs/figures/examples/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/examples/{{dataset}}.tsv"
    retries: rule_retries("figure_examples")
    conda:
        "../envs/fmdenoise.yaml"
    threads: rule_threads("figure_examples")
    resources:
        **rule_resources("figure_examples"),
    params:
        crop=SETTINGS.evaluation.crop,
    script:
        "../workflow_scripts/figure_examples.py"
