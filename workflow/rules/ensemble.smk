# Stacking head over the base models, then the global bias correction
# (debias.global_calibration: the calibration set, or with the training controls).


rule ensemble:
    input:
        folds=FOLDS,
        predictions=all_predictions(),
    output:
        table=BRAIN_AGE,
        fits=ENSEMBLE_FITS,
    params:
        models=MODELS,
        alpha=config["models"]["stacking_alpha"],
        positive="--positive" if config["models"]["stacking_positive"] else "--no-positive",
        calibration=config["debias"]["global_calibration"],
    log:
        log_path("ensemble"),
    threads: 1
    resources:
        mem_mb=memory(1000),
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "brainpad ensemble --folds {input.folds} --models {params.models}"
        " --alpha {params.alpha} {params.positive} --calibration {params.calibration}"
        " --out {output.table} --fits {output.fits}"
        " {input.predictions} > {log} 2>&1"
