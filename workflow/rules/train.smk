# One job per model x fold: fit on the fold's training controls, predict out-of-fold and
# held-out scans. Networks use a GPU when present; a re-run job resumes from its checkpoint.


rule train:
    input:
        unpack(train_inputs),
    output:
        **model_files("{model}", "{fold}"),
    params:
        data=train_data_args,
        settings=lambda wildcards: json.dumps(config["models"][wildcards.model]),
        checkpoint=lambda wildcards, output: Path(output.state).with_suffix(".checkpoint.pt"),
        seed=config["seed"],
    log:
        log_path("train/{model}/fold-{fold}"),
    benchmark:
        benchmark_path("train/{model}/fold-{fold}")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=is_image_model,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad train --model {wildcards.model} --fold {wildcards.fold} --folds {input.folds}"
        " {params.data} --params {params.settings:q} --seed {params.seed}"
        " --predictions {output.predictions} --state {output.state}"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"
