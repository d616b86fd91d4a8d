# Healthy-test accuracy (and on every control a model did not train on), brain-PAD group comparisons, study 2's comparison of the models'
# brain-PAD distributions, survival, clinical associations and the site effects before and
# after harmonisation (results/stats/*.tsv).


rule stats:
    input:
        brain_age=BRAIN_AGE,
        truth=[TRUTH_SUBJECTS] if SIMULATED else [],
        participants=bids_metadata().get("participants", []),
    output:
        accuracy=report(
            STATS["accuracy"],
            caption="../report/accuracy.rst",
            category="Accuracy",
            labels={"table": "healthy-test accuracy"},
        ),
        accuracy_untrained=report(
            STATS["accuracy_untrained"],
            caption="../report/accuracy_untrained.rst",
            category="Accuracy",
            labels={"table": "accuracy on every untrained control"},
        ),
        brain_pad_by_group=report(
            STATS["brain_pad_by_group"],
            caption="../report/group_tables.rst",
            category="Groups",
            labels={"table": "brain-PAD by group"},
        ),
        group_comparison=report(
            STATS["group_comparison"],
            caption="../report/group_tables.rst",
            category="Groups",
            labels={"table": "group comparisons"},
        ),
        accuracy_by_age_bin=report(
            STATS["accuracy_by_age_bin"],
            caption="../report/accuracy_by.rst",
            category="Accuracy",
            labels={"table": "accuracy by age bin"},
        ),
        accuracy_by_site=report(
            STATS["accuracy_by_site"],
            caption="../report/accuracy_by.rst",
            category="Accuracy",
            labels={"table": "accuracy by site"},
        ),
        ensemble_vs_base=report(
            STATS["ensemble_vs_base"],
            caption="../report/ensemble_vs_base.rst",
            category="Accuracy",
            labels={"table": "ensembles vs base models"},
        ),
        model_distributions=report(
            STATS["model_distributions"],
            caption="../report/model_distributions.rst",
            category="Accuracy",
            labels={"table": "brain-PAD distributions of the models (KS)"},
        ),
        survival=report(
            STATS["survival"],
            caption="../report/survival.rst",
            category="Associations",
            labels={"table": "brain-PAD and survival"},
        ),
        associations=report(
            STATS["associations"],
            caption="../report/associations.rst",
            category="Associations",
            labels={"table": "clinical associations"},
        ),
        associations_by_age=report(
            STATS["associations_by_age"],
            caption="../report/associations.rst",
            category="Associations",
            labels={"table": "clinical associations by age window"},
        ),
        harmonisation=report(
            STATS["harmonisation"],
            caption="../report/harmonisation.rst",
            category="Site harmonisation",
            labels={"table": "brain-PAD across sites, before and after"},
        ),
    params:
        models=MODELS,
        control_group=config["control_group"],
        control_min_age=config["stats"]["control_min_age"],
        truth=lambda wildcards, input: f"--truth {input.truth}" if input.truth else "",
        participants=lambda wildcards, input: (
            f"--participants {input.participants}" if input.participants else ""
        ),
        out_dir=lambda wildcards, output: Path(output.accuracy).parent,
        seed=config["seed"],
    log:
        log_path("stats"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/report.yaml"
    shell:
        "brainpad stats --brain-age {input.brain_age} --models {params.models}"
        " --control-group {params.control_group} --control-min-age {params.control_min_age}"
        " {params.truth} {params.participants} --seed {params.seed}"
        " --out-dir {params.out_dir} > {log} 2>&1"
