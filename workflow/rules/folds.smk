# Roles and cross-validation folds of the participants (results/folds.tsv).


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
        " --seed {params.seed} > {log} 2>&1"
