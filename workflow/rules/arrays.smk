# Cohort arrays: cropped modulated GM/WM maps of every scan, memory-mapped on disk.


rule build_arrays:
    input:
        folds=FOLDS,
        maps=preprocessed(("gm", "wm")),
    output:
        **ARRAYS,
    params:
        preproc_dir=lambda wildcards, input: Path(input.maps[0]).parent.parent,
        out_dir=lambda wildcards, output: Path(output.index).parent,
    log:
        log_path("build_arrays"),
    benchmark:
        benchmark_path("build_arrays")
    threads: 1
    resources:
        mem_mb=memory(2000),
        runtime=30,
    conda:
        "../../envs/preprocess.yaml"
    shell:
        "brainpad arrays --folds {input.folds} --preproc-dir {params.preproc_dir}"
        " --out-dir {params.out_dir} > {log} 2>&1"
