# Input discovery and validation: BIDS dataset -> results/manifest.tsv.


rule validate_inputs:
    input:
        description=f"{BIDS_DIR}/dataset_description.json",
        participants=f"{BIDS_DIR}/participants.tsv",
        scans=input_scans(),
        schema=SCHEMAS / "participants.schema.yaml",
    output:
        manifest=MANIFEST,
        skipped=MANIFEST_SKIPPED,
    params:
        bids_dir=lambda wildcards, input: Path(input.description).parent,
        modalities=config["modalities"],
        groups=config["groups"],
        control_group=config["control_group"],
        on_unlisted=config["on_unlisted_scan"],
        max_voxel=config["max_voxel_size_mm"],
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
        " --groups {params.groups} --control-group {params.control_group}"
        " --on-unlisted-scan {params.on_unlisted} --max-voxel-size {params.max_voxel}"
        " --schema {input.schema:q} --threads {threads} > {log} 2>&1"
