# The simulated demo cohort with ground truth (only when bids_dir is 'simulated').


rule simulate_cohort:
    output:
        description=f"{BIDS_DIR}/dataset_description.json",
        files=simulated_files(descriptions=False),
        truth_description=f"{BIDS_DIR}/derivatives/simulation/dataset_description.json",
    params:
        out_dir=lambda wildcards, output: Path(output.description).parent,
        seed=config["seed"],
        settings=json.dumps(config["simulation"]),
        control_group=config["control_group"],
    log:
        log_path("simulate_cohort"),
    benchmark:
        benchmark_path("simulate_cohort")
    threads: 4
    resources:
        mem_mb=memory(4000),
        runtime=60,
    conda:
        "../../envs/simulate.yaml"
    shell:
        "brainpad simulate --out-dir {params.out_dir} --seed {params.seed}"
        " --control-group {params.control_group} --settings {params.settings:q} --threads {threads} > {log} 2>&1"
