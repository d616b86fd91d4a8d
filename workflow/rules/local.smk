# Local brain age (study 1): per-scan brain-age and brain-PAD maps of the voxel model
# (local_unet), raw and voxelwise bias-corrected, under results/maps/scans/sub-*/[ses-*/]anat/;
# their ROI, group and reliability statistics under results/maps/stats/ and statmaps/;
# on simulated data, their validation against the truth.


rule local_maps:
    input:
        folds=FOLDS,
        index=ARRAYS["index"],
        mask=TEMPLATES["mask"],
        predictions=voxel_model_files("predictions"),
        maps=voxel_model_files("maps"),
    output:
        maps=directory(LOCAL_MAPS["maps"]),
        age_dependence=report(
            LOCAL_MAPS["age_dependence"],
            caption="../report/age_dependence.rst",
            category="Bias correction",
            labels={"table": "residual age dependence"},
        ),
        voxel_bias=LOCAL_MAPS["voxel_bias"],
        voxel_bias_json=LOCAL_MAPS["voxel_bias_json"],
    params:
        edges=config["debias"]["voxel_bin_edges"],
        min_per_bin=config["debias"]["min_per_bin"],
        method=config["debias"]["voxel_method"],
        calibration=config["debias"]["voxel_calibration"],
        seed=config["seed"],
        preproc_dir=PREPROC_DIR,
    log:
        log_path("local_maps"),
    benchmark:
        benchmark_path("local_maps")
    threads: 1
    resources:
        mem_mb=memory(4000),
        runtime=60,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad local-maps --folds {input.folds} --index {input.index} --mask {input.mask}"
        " --predictions {input.predictions} --maps {input.maps} --bin-edges {params.edges}"
        " --min-per-bin {params.min_per_bin} --voxel-method {params.method}"
        " --calibration {params.calibration}"
        " --seed {params.seed} --out-dir {output.maps} --preproc-dir {params.preproc_dir}"
        " --age-dependence {output.age_dependence} --voxel-bias {output.voxel_bias}"
        " > {log} 2>&1"


rule local_stats:
    input:
        folds=FOLDS,
        maps=LOCAL_MAPS["maps"],
        mask=TEMPLATES["mask"],
        atlas=TEMPLATES["atlas"],
        labels=TEMPLATES["labels"],
        roi_volumes=ROI_VOLUMES,
        volumes=ARRAYS["volumes"],
        index=ARRAYS["index"],
        truth=[TRUTH_SUBJECTS] if SIMULATED else [],
    output:
        statmaps=directory(LOCAL_STATMAPS),
        roi_brain_pad=LOCAL_STATS["roi_brain_pad"],
        roi_volume_correlation=local_table(
            "roi_volume_correlation", "roi_volume_correlation", "ROI volume vs brain-PAD", "Regions"
        ),
        global_group_comparison=local_table(
            "global_group_comparison", "local_group_tables", "global group comparisons", "Groups"
        ),
        roi_group_comparison=local_table(
            "roi_group_comparison", "local_group_tables", "ROI group comparisons", "Regions"
        ),
        voxel_group_comparison=local_table(
            "voxel_group_comparison", "local_group_tables", "voxel group comparisons", "Regions"
        ),
        icc=local_table("icc", "icc", "ICC(2,1) maps", "Reliability"),
        accuracy=local_table("accuracy", "local_accuracy", "local model accuracy"),
    params:
        control_group=config["control_group"],
        control_min_age=config["stats"]["control_min_age"],
        truth=lambda wildcards, input: f"--truth {input.truth}" if input.truth else "",
        out_dir=lambda wildcards, output: Path(output.accuracy).parent,
    log:
        log_path("local_stats"),
    benchmark:
        benchmark_path("local_stats")
    threads: 1
    resources:
        mem_mb=memory(4000),
        runtime=60,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad local-stats --folds {input.folds} --maps-dir {input.maps} --mask {input.mask}"
        " --atlas {input.atlas} --labels {input.labels} --roi-volumes {input.roi_volumes}"
        " --volumes {input.volumes} --index {input.index}"
        " --control-group {params.control_group} --control-min-age {params.control_min_age}"
        " {params.truth} --statmaps-dir {output.statmaps} --out-dir {params.out_dir}"
        " > {log} 2>&1"


rule local_planted:
    input:
        models=voxel_model_files("state"),
        volumes=ARRAYS["volumes"],
        index=ARRAYS["index"],
        folds=FOLDS,
        mask=TEMPLATES["mask"],
        regions=TRUTH_REGIONS,
        truth_maps=truth_maps(),
    output:
        LOCAL_PLANTED,
    params:
        control_group=config["control_group"],
        truth_dir=lambda wildcards, input: Path(input.regions).parent,
    log:
        log_path("local_planted"),
    benchmark:
        benchmark_path("local_planted")
    threads: 2
    resources:
        mem_mb=memory(3000),
        runtime=60,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad local-planted --models {input.models} --volumes {input.volumes}"
        " --index {input.index} --folds {input.folds} --mask {input.mask}"
        " --truth-dir {params.truth_dir} --control-group {params.control_group}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule local_truth:
    input:
        statmaps=LOCAL_STATMAPS,
        roi_comparison=LOCAL_STATS["roi_group_comparison"],
        mask=TEMPLATES["mask"],
        regions=TRUTH_REGIONS,
        truth_maps=truth_maps(),
        planted=LOCAL_PLANTED,
        volumes=ARRAYS["volumes"],
        index=ARRAYS["index"],
        folds=FOLDS,
        maps=LOCAL_MAPS["maps"],
    output:
        report(
            LOCAL_TRUTH,
            caption="../report/truth_validation.rst",
            category="Simulation truth",
            labels={"table": "local maps vs truth"},
        ),
    params:
        control_group=config["control_group"],
        truth_dir=lambda wildcards, input: Path(input.regions).parent,
        seed=config["seed"],
    log:
        log_path("local_truth"),
    threads: 1
    resources:
        mem_mb=memory(2000),
        runtime=10,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad local-truth --statmaps-dir {input.statmaps}"
        " --roi-comparison {input.roi_comparison} --mask {input.mask}"
        " --truth-dir {params.truth_dir} --control-group {params.control_group}"
        " --planted {input.planted} --volumes {input.volumes} --index {input.index}"
        " --folds {input.folds} --maps-dir {input.maps} --seed {params.seed}"
        " --out {output} > {log} 2>&1"
