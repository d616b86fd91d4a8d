# Why the networks predict what they do (studies 3 and 4): LRP and Grad-CAM relevance maps
# of every scan under results/interpret/<method>/, their permutation tests with TFCE, the
# clusters with Harvard-Oxford labels and, on simulated data, their validation against the
# truth.


rule relevance:
    input:
        states=[model_files(m, f)["state"] for m in RELEVANCE_MODELS for f in FOLD_IDS],
        volumes=[
            INPUT_ARRAYS[parse_base_model(m).input]["volumes"] for m in RELEVANCE_MODELS
        ],
        index=ARRAYS["index"],
        folds=FOLDS,
        mask=TEMPLATES["mask"],
    output:
        **RELEVANCE,
    params:
        methods=RELEVANCE_METHODS,
        lrp_rule=config["interpret"]["lrp_rule"],
        control_group=config["control_group"],
        arrays_dir=lambda wildcards, input: Path(input.index).parent,
        out_dir=lambda wildcards, output: Path(output.scans).parent,
    log:
        log_path("relevance"),
    benchmark:
        benchmark_path("relevance")
    threads: 1
    resources:
        mem_mb=memory(3000),
        runtime=30,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad relevance --states {input.states} --arrays-dir {params.arrays_dir}"
        " --folds {input.folds} --mask {input.mask} --methods {params.methods}"
        " --lrp-rule {params.lrp_rule} --control-group {params.control_group}"
        " --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"


rule relevance_stats:
    input:
        maps=list(RELEVANCE.values()),
        mask=TEMPLATES["mask"],
        atlas=TEMPLATES["atlas"],
        labels=TEMPLATES["labels"],
        truth=[TRUTH_REGIONS] if SIMULATED else [],
    output:
        tests=report(
            RELEVANCE_STATS["tests"],
            caption="../report/relevance_tests.rst",
            category="Interpretability",
            labels={"table": "relevance tests (TFCE, FWE)"},
        ),
        clusters=report(
            RELEVANCE_STATS["clusters"],
            caption="../report/relevance_clusters.rst",
            category="Interpretability",
            labels={"table": "significant relevance clusters"},
        ),
        truth=(
            [
                report(
                    RELEVANCE_STATS["truth"],
                    caption="../report/relevance_truth.rst",
                    category="Simulation truth",
                    labels={"table": "relevance in the truly ageing regions"},
                ),
                report(
                    RELEVANCE_STATS["truth_clusters"],
                    caption="../report/relevance_truth_clusters.rst",
                    category="Simulation truth",
                    labels={"table": "relevance clusters vs the true disease map"},
                ),
            ]
            if SIMULATED
            else []
        ),
    params:
        methods=RELEVANCE_METHODS,
        control_group=config["control_group"],
        young_max=config["interpret"]["young_max"],
        old_min=config["stats"]["control_min_age"],
        n_perm=config["interpret"]["n_perm"],
        downsample=config["interpret"]["downsample"],
        alpha=config["interpret"]["alpha"],
        truth=lambda wildcards, input: (
            f"--truth-dir {Path(input.truth[0]).parent}" if input.truth else ""
        ),
        seed=config["seed"],
        out_dir=lambda wildcards, output: Path(output.tests).parent,
    log:
        log_path("relevance_stats"),
    benchmark:
        benchmark_path("relevance_stats")
    threads: 1
    resources:
        mem_mb=memory(3000),
        runtime=60,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad relevance-stats --out-dir {params.out_dir} --mask {input.mask}"
        " --atlas {input.atlas} --labels {input.labels} --methods {params.methods}"
        " --control-group {params.control_group} --young-max {params.young_max}"
        " --old-min {params.old_min} --n-perm {params.n_perm}"
        " --downsample {params.downsample} --alpha {params.alpha} {params.truth}"
        " --seed {params.seed} > {log} 2>&1"


rule relevance_figure:
    input:
        tests=RELEVANCE_STATS["tests"],
        template=TEMPLATES["t1"],
    output:
        report(
            INTERPRET_FIGURE,
            caption="../report/relevance_figure.rst",
            category="Interpretability",
            labels={"figure": "relevance maps and their tests"},
        ),
    params:
        methods=RELEVANCE_METHODS,
        alpha=config["interpret"]["alpha"],
        out_dir=lambda wildcards, input: Path(input.tests).parent,
    log:
        log_path("relevance_figure"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad relevance-figure --out-dir {params.out_dir} --template {input.template}"
        " --methods {params.methods} --alpha {params.alpha} --out {output} > {log} 2>&1"
