# Study 3's two-level stack (sub-ensemble heads, then the top head, cross-fitted with inner
# folds), the per-scan uncertainty, then the global bias correction
# (debias.global_calibration: the calibration set, or with the training controls), and with
# harmonise.enabled ComBat on the corrected brain-PAD (src/brainpad/harmonise/tables.py).


rule ensemble:
    input:
        folds=FOLDS,
        predictions=all_predictions(),
        roi_combat=ROI_COMBAT if HARMONISE else [],
    output:
        table=BRAIN_AGE,
        fits=ENSEMBLE_FITS,
        modality=report(
            MODALITY_STACKING,
            caption="../report/modality_stacking.rst",
            category="Accuracy",
            labels={"table": "multimodal stacking (study 4)"},
        ),
    params:
        models=MODELS,
        alpha=config["models"]["stacking_alpha"],
        sub_alpha=config["models"]["sub_ensemble_alpha"],
        stacking_folds=config["models"]["stacking_folds"],
        seed=config["seed"],
        positive="--positive" if config["models"]["stacking_positive"] else "--no-positive",
        calibration=config["debias"]["global_calibration"],
        harmonise=lambda wildcards, input: (
            f"--harmonise --control-group {config['control_group']}"
            + (f" --roi-combat {input.roi_combat}" if input.roi_combat else "")
            if HARMONISE
            else ""
        ),
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
        " --sub-alpha {params.sub_alpha} --stacking-folds {params.stacking_folds}"
        " --seed {params.seed} {params.harmonise}"
        " --out {output.table} --fits {output.fits} --modality {output.modality}"
        " {input.predictions} > {log} 2>&1"
