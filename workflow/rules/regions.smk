# Harvard-Oxford ROI tissue volumes of every scan (results/regions/roi_volumes.tsv).


rule roi_volumes:
    input:
        folds=FOLDS,
        maps=preprocessed(("gm", "wm", "csf")),
        atlas=TEMPLATES["atlas"],
        labels=TEMPLATES["labels"],
    output:
        ROI_VOLUMES,
    params:
        preproc_dir=lambda wildcards, input: Path(input.maps[0]).parent.parent,
    log:
        log_path("roi_volumes"),
    benchmark:
        benchmark_path("roi_volumes")
    threads: 1
    resources:
        mem_mb=memory(2000),
        runtime=30,
    conda:
        "../../envs/preprocess.yaml"
    shell:
        "brainpad regions --folds {input.folds} --preproc-dir {params.preproc_dir}"
        " --atlas {input.atlas} --labels {input.labels} --out {output} > {log} 2>&1"
