# The trained bundle: every fold model, the stacking heads, the global bias corrections,
# the templates and the settings, with a checksum of every file (results/bundle/).


rule bundle:
    input:
        states=[model_files(m, f)["state"] for m in MODELS for f in FOLD_IDS],
        fits=ENSEMBLE_FITS,
        folds=FOLDS,
        index=ARRAYS["index"],
        manifest=MANIFEST,
        templates=list(TEMPLATES.values()),
        voxel_bias=bundle_voxel_bias(),
    output:
        directory(BUNDLE),
    params:
        template_dir=lambda wildcards, input: Path(input.templates[0]).parent,
        voxel_bias=lambda wildcards, input: (
            f"--voxel-bias {input.voxel_bias}" if input.voxel_bias else ""
        ),
        voxel_size=config["preprocess"]["voxel_size"],
        settings=lambda wildcards: json.dumps(bundle_settings()),
    log:
        log_path("bundle"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad bundle --out {output} --fits {input.fits} --folds {input.folds}"
        " --index {input.index} --manifest {input.manifest}"
        " --template-dir {params.template_dir} {params.voxel_bias}"
        " --voxel-size {params.voxel_size} --settings {params.settings:q}"
        " {input.states} > {log} 2>&1"
