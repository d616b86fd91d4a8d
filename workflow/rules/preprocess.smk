# Per-scan preprocessing: MNI templates once, then one job per T1w scan (or, with config
# preprocess.batches, one job per batch of scans), then the QC table.


# apply mode preprocesses with the bundle's own copy of the templates
if not APPLY:

    rule mni_templates:
        input:
            validated(lambda wildcards: []),  # planned only after validation passed
        output:
            **TEMPLATES,
        params:
            out_dir=lambda wildcards, output: Path(output.t1).parent,
            voxel=config["preprocess"]["voxel_size"],
            threshold=config["atlas_threshold"],
        log:
            log_path("mni_templates"),
        threads: 1
        resources:
            mem_mb=memory(3000),
            runtime=10,
        conda:
            "../../envs/preprocess.yaml"
        shell:
            "brainpad templates --out-dir {params.out_dir} --voxel-size {params.voxel}"
            " --atlas-threshold {params.threshold} > {log} 2>&1"


# the parameters preprocess_t1w and preprocess_batch share
PREPROCESS_PARAMS = dict(
    templates_dir=lambda wildcards, input: Path(input.templates[0]).parent,
    voxel=config["preprocess"]["voxel_size"],
    fwhm=config["preprocess"]["fwhm_mm"],
    syn=config["preprocess"]["syn_iterations"],
    prior_weight=config["preprocess"]["prior_weight"],
    modulation=config["preprocess"]["modulation"],
    qc=json.dumps(config["qc"]),
    seed=PREPROCESS_SEED,
)


rule preprocess_t1w:
    input:
        scan=validated(lambda wildcards: T1W_PATHS[wildcards.scan]),
        flair=validated(lambda wildcards: FLAIR_PATHS.get(wildcards.scan, [])),
        templates=[TEMPLATES[k] for k in ("t1", "gm", "wm", "csf", "mask")],
    output:
        **preproc_files(),
    params:
        # a pattern, not a function: a job per scan, and each function costs Snakemake a
        # signature inspection per job when planning (10,000 scans)
        out_dir=PREPROC_FOLDER,
        flair=lambda wildcards, input: f"--flair '{input.flair}'" if input.flair else "",
        **PREPROCESS_PARAMS,
    log:
        log_path("preprocess/{folder}/{scan}"),
    benchmark:
        benchmark_path("preprocess/{folder}/{scan}")
    threads: 1
    resources:
        mem_mb=memory(3000),
        runtime=30,
    conda:
        "../../envs/preprocess.yaml"
    shell:
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads}"
        " brainpad preprocess --scan {input.scan:q} --scan-id {wildcards.scan}"
        " {params.flair}"
        " --out-dir {params.out_dir} --templates-dir {params.templates_dir}"
        " --voxel-size {params.voxel} --fwhm {params.fwhm} --syn-iterations {params.syn}"
        " --prior-weight {params.prior_weight} --modulation {params.modulation}"
        " --qc {params.qc:q} --seed {params.seed} > {log} 2>&1"


rule preprocess_batch:
    input:
        scans=validated(lambda wildcards: [T1W_PATHS[s] for s in BATCHES[wildcards.batch]]),
        flairs=validated(
            lambda wildcards: [FLAIR_PATHS[s] for s in BATCHES[wildcards.batch] if s in FLAIR_PATHS]
        ),
        templates=[TEMPLATES[k] for k in ("t1", "gm", "wm", "csf", "mask")],
    output:
        batch_qc_table("{batch}"),
    params:
        scan_ids=lambda wildcards: BATCHES[wildcards.batch],
        # each scan's FLAIR, or '-' (none, or no model reads FLAIR)
        flairs=lambda wildcards: (
            "--flairs " + " ".join(FLAIR_PATHS.get(s, "-") for s in BATCHES[wildcards.batch])
            if FLAIR_PATHS
            else ""
        ),
        # results/preproc/batches/<batch>_qc.tsv -> results/preproc
        preproc_dir=lambda wildcards, output: Path(output[0]).parent.parent,
        **PREPROCESS_PARAMS,
    log:
        log_path("preprocess/batches/{batch}"),
    benchmark:
        benchmark_path("preprocess/batches/{batch}")
    threads: 1
    resources:
        mem_mb=memory(3000),
        # minutes: 20 per scan (what profiles/slurm gives one scan), one scan after another
        runtime=lambda wildcards: 20 * len(BATCHES[wildcards.batch]),
    conda:
        "../../envs/preprocess.yaml"
    shell:
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads}"
        " brainpad preprocess-batch --scans {input.scans:q} --scan-ids {params.scan_ids}"
        " {params.flairs}"
        " --preproc-dir {params.preproc_dir} --qc-table {output}"
        " --templates-dir {params.templates_dir}"
        " --voxel-size {params.voxel} --fwhm {params.fwhm} --syn-iterations {params.syn}"
        " --prior-weight {params.prior_weight} --modulation {params.modulation}"
        " --qc {params.qc:q} --seed {params.seed} > {log} 2>&1"


rule qc_summary:
    input:
        manifest=MANIFEST,
        qc=[batch_qc_table(b) for b in BATCHES]
        if BATCHES
        else [preproc_files(scan)["qc"] for scan in T1W_SCANS.index],
    output:
        QC_TABLE,
    params:
        preproc_dir=lambda wildcards, output: Path(output[0]).parent,  # QC_TABLE's folder
    log:
        log_path("qc_summary"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/preprocess.yaml"
    shell:
        # the scans come from the manifest: 10,000 file names would overflow the command
        "brainpad qc-summary --manifest {input.manifest} --preproc-dir {params.preproc_dir}"
        " --out {output} > {log} 2>&1"
