# Stage cohort (src/brainpad/cohort/): roles and cross-validation folds (results/folds.tsv),
# the memory-mapped cohort arrays, and the Harvard-Oxford ROI volumes of every scan.


rule make_folds:
    input:
        manifest=MANIFEST,
        qc=QC_TABLE,
    output:
        FOLDS,
    params:
        control_group=config["control_group"],
        k=config["folds"]["k"],
        calibration=config["folds"]["calibration_fraction"],
        test=config["folds"]["test_fraction"],
        split=config["folds"]["split"],
        seed=config["seed"],
    log:
        log_path("make_folds"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=5,
    conda:
        "../../envs/inputs.yaml"
    shell:
        "brainpad folds --manifest {input.manifest} --qc {input.qc} --out {output}"
        " --control-group {params.control_group} --k {params.k}"
        " --calibration-fraction {params.calibration} --test-fraction {params.test}"
        " --split {params.split} --seed {params.seed} > {log} 2>&1"


rule build_arrays:
    input:
        folds=FOLDS,
        maps=preprocessed(("gm", "wm")),
    output:
        index=ARRAYS["index"],
        arrays=[path for files in INPUT_ARRAYS.values() for path in files.values()],
    params:
        preproc_dir=preproc_root,
        out_dir=lambda wildcards, output: Path(output.index).parent,
        inputs=MODEL_INPUTS,
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
        " --out-dir {params.out_dir} --inputs {params.inputs} > {log} 2>&1"


rule roi_volumes:
    input:
        folds=FOLDS,
        maps=preprocessed(("gm", "wm", "csf")),
        atlas=TEMPLATES["atlas"],
        labels=TEMPLATES["labels"],
    output:
        ROI_VOLUMES,
    params:
        preproc_dir=preproc_root,
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
