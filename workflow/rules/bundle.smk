# The trained bundle: every fold model, the stacking heads, the global bias corrections,
# the templates and the settings, with a checksum of every file (results/bundle/). In
# apply mode (config `bundle`), the one rule that applies a bundle to the new cohort.


if APPLY:

    rule apply_bundle:
        input:
            manifest=MANIFEST,
            qc=QC_TABLE,
            maps=preprocessed(("gm", "wm", "csf")),
            bundle=BUNDLE_DIR,
        output:
            brain_age=BRAIN_AGE,
            roi_volumes=ROI_VOLUMES,
            recalibration="results/ensemble/recalibration.tsv",
            maps=directory(LOCAL_MAPS["maps"]),
        params:
            # results/preproc/qc.tsv -> results/preproc (each scan's preprocessing)
            preproc_dir=lambda wildcards, input: Path(input.qc).parent,
            recalibrate=config["recalibrate"],
            harmonise=harmonise_args(),
        log:
            log_path("apply_bundle"),
        benchmark:
            benchmark_path("apply_bundle")
        threads: 2
        resources:
            mem_mb=memory(4000),
            runtime=120,
        conda:
            "../../envs/train.yaml"
        shell:
            "brainpad apply --bundle {input.bundle} --manifest {input.manifest}"
            " --qc {input.qc} --preproc-dir {params.preproc_dir}"
            " --recalibrate {params.recalibrate} {params.harmonise} --out {output.brain_age}"
            " --roi-volumes {output.roi_volumes} --recalibration {output.recalibration}"
            " --maps-dir {output.maps} --threads {threads} > {log} 2>&1"

else:

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