# Site harmonisation (harmonise.enabled; src/brainpad/harmonise/): ComBat on the ROI volumes
# ridge_roi reads, fitted on the training controls and applied without each scan's own age.
# The brain-PAD ComBat runs inside the ensemble rule, after the bias correction.


rule harmonise_roi:
    input:
        roi=ROI_VOLUMES,
        folds=FOLDS,
    output:
        table=ROI_HARMONISED,
        fit=ROI_COMBAT,
    params:
        control_group=config["control_group"],
    log:
        log_path("harmonise_roi"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=5,
    conda:
        "../../envs/harmonise.yaml"
    shell:
        "brainpad harmonise-roi --roi {input.roi} --folds {input.folds}"
        " --control-group {params.control_group} --out {output.table} --fit {output.fit}"
        " > {log} 2>&1"
