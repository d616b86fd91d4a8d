# Figures and tables of the HTML report (`snakemake --report results/report.html`).


rule report_figures:
    input:
        brain_age=BRAIN_AGE,
        qc=QC_TABLE,
        stats=list(STATS.values()),
    output:
        predicted_vs_age=report(
            REPORT_FIGURES["predicted_vs_age"],
            caption="../report/predicted_vs_age.rst",
            category="Accuracy",
            labels={"figure": "predicted vs chronological age"},
        ),
        brain_pad_by_group=report(
            REPORT_FIGURES["brain_pad_by_group"],
            caption="../report/brain_pad_by_group.rst",
            category="Groups",
            labels={"figure": "brain-PAD by group"},
        ),
        brain_pad_by_site=report(
            REPORT_FIGURES["brain_pad_by_site"],
            caption="../report/brain_pad_by_site.rst",
            category="Site harmonisation",
            labels={"figure": "controls' brain-PAD by site"},
        ),
        brain_pad_by_model=report(
            REPORT_FIGURES["brain_pad_by_model"],
            caption="../report/brain_pad_by_model.rst",
            category="Accuracy",
            labels={"figure": "brain-PAD by model"},
        ),
        associations=report(
            REPORT_FIGURES["associations"],
            caption="../report/associations_figure.rst",
            category="Associations",
            labels={"figure": "clinical associations by age"},
        ),
        uncertainty=report(
            REPORT_FIGURES["uncertainty"],
            caption="../report/uncertainty.rst",
            category="Accuracy",
            labels={"figure": "uncertainty vs error"},
        ),
        qc=report(
            REPORT_FIGURES["qc"],
            caption="../report/qc.rst",
            category="QC",
            labels={"figure": "QC summary"},
        ),
        qc_failed_montages=report(
            REPORT_FIGURES["qc_failed_montages"],
            caption="../report/qc_failed_montages.rst",
            category="QC",
            labels={"figure": "montages of the scans that failed QC"},
        ),
        qc_failed=report(
            REPORT_TABLES["qc_failed"],
            caption="../report/qc_failed.rst",
            category="QC",
            labels={"table": "scans that failed QC"},
        ),
        front=REPORT_FRONT,
        notes=REPORT_NOTES,
    params:
        models=MODELS,
        notes=" ".join(f"--note {shlex.quote(note)}" for note in RUN_NOTES),
        control_group=config["control_group"],
        control_min_age=config["stats"]["control_min_age"],
        min_similarity=config["qc"]["min_similarity"],
        tiv_range=config["qc"]["tiv_range_ml"],
        stats_dir=lambda wildcards, input: Path(input.stats[0]).parent,
        # results/preproc/qc.tsv -> results/preproc (the failed scans' montages)
        preproc_dir=lambda wildcards, input: Path(input.qc).parent,
        out_dir=lambda wildcards, output: Path(output.qc).parent,
    log:
        log_path("report_figures"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad report --brain-age {input.brain_age} --qc {input.qc}"
        " --stats-dir {params.stats_dir} --models {params.models}"
        " --control-group {params.control_group} --control-min-age {params.control_min_age}"
        " --min-similarity {params.min_similarity} --tiv-range {params.tiv_range}"
        " --preproc-dir {params.preproc_dir} --out-dir {params.out_dir} {params.notes}"
        " > {log} 2>&1"


rule local_figure:
    input:
        statmaps=LOCAL_STATMAPS,
        template=TEMPLATES["t1"],
        maps=LOCAL_MAPS["maps"],
        folds=FOLDS,
        truth=truth_maps() if SIMULATED else [],
    output:
        report(
            LOCAL_FIGURE,
            caption="../report/local_maps.rst",
            category="Local brain age",
            labels={"figure": "local brain-PAD maps"},
        ),
    params:
        control_group=config["control_group"],
        truth=lambda wildcards, input: (
            f"--truth-dir {Path(input.truth[0]).parent}" if input.truth else ""
        ),
    log:
        log_path("local_figure"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad local-figure --statmaps-dir {input.statmaps} --template {input.template}"
        " --maps-dir {input.maps} --folds {input.folds}"
        " --control-group {params.control_group} {params.truth} --out {output} > {log} 2>&1"


if DIFFAE_MODELS:

    rule diffae_figure:
        input:
            model=model_files(DIFFAE_MODELS[0].name, 0)["state"],
            volumes=INPUT_ARRAYS[DIFFAE_MODELS[0].input]["volumes"],
            index=ARRAYS["index"],
            folds=FOLDS,
        output:
            report(
                DIFFAE_FIGURE,
                caption="../report/diffae_reconstructions.rst",
                category="Accuracy",
                labels={"figure": "diffusion autoencoder reconstructions (study 2)"},
            ),
        log:
            log_path("diffae_figure"),
        threads: 1
        resources:
            mem_mb=memory(1000),
            runtime=10,
        conda:
            "../../envs/train.yaml"
        shell:
            "brainpad diffae-figure --model {input.model} --volumes {input.volumes}"
            " --index {input.index} --folds {input.folds} --out {output} > {log} 2>&1"
