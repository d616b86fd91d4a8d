# Per-scan brain-age and brain-PAD maps of the voxel model (local_unet), raw and
# voxelwise bias-corrected, under results/maps/scans/<participant>/.


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
            category="Local brain age",
            labels={"table": "residual age dependence"},
        ),
    params:
        edges=config["debias"]["voxel_bin_edges"],
        min_per_bin=config["debias"]["min_per_bin"],
    log:
        log_path("local_maps"),
    benchmark:
        benchmark_path("local_maps")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad local-maps --folds {input.folds} --index {input.index} --mask {input.mask}"
        " --predictions {input.predictions} --maps {input.maps} --bin-edges {params.edges}"
        " --min-per-bin {params.min_per_bin} --out-dir {output.maps}"
        " --age-dependence {output.age_dependence} > {log} 2>&1"
