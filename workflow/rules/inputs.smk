# Input discovery and validation: BIDS dataset -> results/manifest.tsv.
# A checkpoint: the jobs that compute from the scans (mni_templates, preprocessing) are
# planned only once it has passed (common.smk: validated), so a bad dataset computes
# nothing, while a re-validation does not by itself re-run them.


checkpoint validate_inputs:
    input:
        **bids_metadata(),
        scans=[p for p in input_scans() if SIMULATED or Path(p).exists()],
        sessions=sessions_tables(),
        schema=SCHEMAS / "participants.schema.yaml",
        sessions_schema=SCHEMAS / "sessions.schema.yaml",
    output:
        manifest=MANIFEST,
        skipped=MANIFEST_SKIPPED,
    params:
        bids_dir=lambda wildcards: BIDS_DIR,  # the root folder; its files are the inputs
        modalities=config["modalities"],
        # a model reads it: every session needs one (unless a T1w-only head predicts it)
        require=["FLAIR"] if USES_FLAIR and not T1W_ONLY_HEAD else [],
        # apply mode: the new cohort's own groups, each compared with the control group
        groups=lambda wildcards: "--any-group" if APPLY else "--groups " + " ".join(config["groups"]),
        participants=participant_selection(),
        control_group=config["control_group"],
        on_unlisted=config["on_unlisted_scan"],
        max_voxel=config["max_voxel_size_mm"],
        max_image_mb=config["max_image_mb"],
        unlabelled=config["unlabelled"],
    log:
        log_path("validate_inputs"),
    threads: 2
    resources:
        mem_mb=memory(2000),
        runtime=30,
    conda:
        "../../envs/inputs.yaml"
    shell:
        "brainpad validate --bids-dir {params.bids_dir:q} --manifest {output.manifest}"
        " --skipped {output.skipped} --modalities {params.modalities}"
        " --require {params.require}"
        " {params.groups} --control-group {params.control_group} {params.participants}"
        " --on-unlisted-scan {params.on_unlisted} --max-voxel-size {params.max_voxel}"
        " --max-image-mb {params.max_image_mb} --unlabelled {params.unlabelled}"
        " --schema {input.schema:q} --threads {threads} > {log} 2>&1"


# results/preproc/dataset_description.json (the preprocessing as BIDS derivatives), once the dataset has passed validation (before it, no
# job but validate_inputs may run)
rule describe_derivatives:
    input:
        validated(lambda wildcards: [v for k, v in bids_metadata().items() if k == "description"]),
    output:
        DERIVATIVES_DESCRIPTION,
        f"{PREPROC_DIR}/.bidsignore",
    params:
        bids_dir=lambda wildcards: BIDS_DIR,
        out_dir=lambda wildcards, output: Path(output[0]).parent,
    log:
        log_path("describe_derivatives"),
    threads: 1
    resources:
        mem_mb=memory(500),
        runtime=5,
    conda:
        "../../envs/inputs.yaml"
    shell:
        "brainpad describe --bids-dir {params.bids_dir:q} --out-dir {params.out_dir} > {log} 2>&1"
