# One job per model x fold: fit on the fold's training controls, predict out-of-fold and
# held-out scans. Networks use a GPU when present; a re-run job resumes from its checkpoint.
# Voxel models (local_unet) also write a brain-age map of every scan they predict.


rule train:
    wildcard_constraints:
        model="|".join(WHOLE_MODELS) or "none",
    input:
        unpack(train_inputs),
    output:
        **model_files("{model}", "{fold}"),
    params:
        data=train_data_args,
        settings=model_settings,
        checkpoint=lambda wildcards, output: Path(output.state).with_suffix(".checkpoint.pt"),
        seed=config["seed"],
    log:
        log_path("train/{model}/fold-{fold}"),
    benchmark:
        benchmark_path("train/{model}/fold-{fold}")
    # one thread: a small network keeps one core busy, so N cores run N jobs side by side
    # (two 1-thread jobs finish ~35 % sooner than the same two jobs on 2 threads each);
    # --set-threads train=8 for a big network on a CPU-only machine
    threads: 1
    resources:
        mem_mb=memory(4000),
        runtime=120,
        gpu=is_network,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad train --model {wildcards.model} --fold {wildcards.fold} --folds {input.folds}"
        " {params.data} --params {params.settings:q} --seed {params.seed}"
        " --predictions {output.predictions} --state {output.state}"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"


rule train_voxel:
    wildcard_constraints:
        model="|".join(VOXEL_MODELS) or "none",
    input:
        unpack(train_inputs),
    output:
        **model_files("{model}", "{fold}", maps=True),
    params:
        settings=model_settings,
        checkpoint=lambda wildcards, output: Path(output.state).with_suffix(".checkpoint.pt"),
        seed=config["seed"],
    log:
        log_path("train/{model}/fold-{fold}"),
    benchmark:
        benchmark_path("train/{model}/fold-{fold}")
    threads: 1  # 2 threads ran it only 1.18x faster; two folds side by side use both cores
    resources:
        mem_mb=memory(4000),
        runtime=240,
        gpu=1,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad train --model {wildcards.model} --fold {wildcards.fold} --folds {input.folds}"
        " --volumes {input.volumes} --index {input.index} --mask {input.mask}"
        " --params {params.settings:q} --seed {params.seed}"
        " --predictions {output.predictions} --state {output.state} --maps {output.maps}"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"
