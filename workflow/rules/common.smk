# Shared helpers: where the inputs are, how to call brainpad, wildcard constraints.
# Functions and constants only; no rules.
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

import pandas as pd

from brainpad.paths import (
    CONSUMED,
    array_files,
    output_paths,
    preproc_paths,
    scan_batches,
    template_files,
)
from brainpad.inputs.bids import dataset_overlap, describe_scan, discover_scans, listed_participants
from brainpad.inputs.tables import SCHEMAS
from brainpad.inputs.validate import participant_ids
from brainpad.models import base_models, get_spec, parse_base_model, without_input

SIMULATED = config["bids_dir"] == "simulated"
BIDS_DIR = "results/simulated" if SIMULATED else config["bids_dir"]
if not SIMULATED:
    # a real dataset is read only: no output of the workflow may land inside it
    if overlap := dataset_overlap(BIDS_DIR, Path.cwd()):
        raise WorkflowError(overlap)
# Apply mode (`bundle` set): the bundle's settings replace the config's, nothing is trained
BUNDLE_SETTINGS = (
    "seed", "modalities", "control_group", "atlas_threshold", "preprocess", "qc", "models",
    "debias",
)  # fmt: skip
APPLY = bool(config["bundle"])
PREPROCESS_SEED = config["seed"]
if APPLY:
    BUNDLE_DIR = Path(config["bundle"]).resolve()
    if not (BUNDLE_DIR / "bundle.json").is_file():
        raise WorkflowError(
            f"bundle: {BUNDLE_DIR} has no bundle.json; give the folder a training run "
            "exported (its results/bundle)"
        )
    if BUNDLE_DIR.is_relative_to(Path.cwd() / "results"):
        raise WorkflowError(
            f"bundle: {BUNDLE_DIR} lies in this run's results/, which apply mode would "
            "overwrite; run it in another directory (snakemake --directory DIR ...)"
        )
    TRAINED = json.loads((BUNDLE_DIR / "bundle.json").read_text())["settings"]
    for key in BUNDLE_SETTINGS:
        if key != "seed" and key in TRAINED:  # the config's seed still drives a simulation
            config[key] = TRAINED[key]
    PREPROCESS_SEED = TRAINED["seed"]
MANIFEST = "results/manifest.tsv"
# results/ as a BIDS-derivatives dataset: its description (brainpad.derivatives)
DERIVATIVES_DESCRIPTION = "results/preproc/dataset_description.json"
MANIFEST_SKIPPED = "results/manifest_skipped.tsv"
QC_TABLE = "results/preproc/qc.tsv"
FOLDS = "results/folds.tsv"
ROI_VOLUMES = "results/regions/roi_volumes.tsv"
HARMONISE = config["harmonise"]["enabled"]
ROI_HARMONISED = "results/harmonise/roi_volumes.tsv"
ROI_COMBAT = "results/harmonise/roi_combat.json"
# what ridge_roi reads: the ROI volumes, harmonised when harmonise.enabled
ROI_FEATURES = ROI_HARMONISED if HARMONISE else ROI_VOLUMES
BRAIN_AGE = "results/ensemble/brain_age.tsv"
ENSEMBLE_FITS = "results/ensemble/fits.json"
MODALITY_STACKING = "results/ensemble/modality_stacking.tsv"
BUNDLE = "results/bundle"
STATS = {
    name: f"results/stats/{name}.tsv"
    for name in (
        "accuracy",
        "accuracy_untrained",
        "brain_pad_by_group",
        "group_comparison",
        "accuracy_by_age_bin",
        "accuracy_by_site",
        "ensemble_vs_base",
        "model_distributions",
        "survival",
        "associations",
        "associations_by_age",
        "harmonisation",
    )
}
REPORT_FIGURES = {
    name: f"results/report/{name}.png"
    for name in (
        "predicted_vs_age",
        "brain_pad_by_group",
        "brain_pad_by_model",
        "brain_pad_by_site",
        "associations",
        "uncertainty",
        "qc",
        "qc_failed_montages",
    )
}
REPORT_TABLES = {"qc_failed": "results/report/qc_failed.tsv"}
REPORT_NOTES = "results/report/notes.txt"  # RUN_NOTES, one a line (brainpad summary)
REPORT_FRONT = "results/report/front.rst"  # the front page's figures (workflow.rst includes it)
LOCAL_MAPS = {
    "maps": "results/maps/scans",
    "age_dependence": "results/maps/age_dependence.tsv",
    "voxel_bias": "results/maps/voxel_bias.nii.gz",  # and its JSON sidecar
    "voxel_bias_json": "results/maps/voxel_bias.json",
}
LOCAL_STATMAPS = "results/maps/statmaps"
LOCAL_STATS = {
    name: f"results/maps/stats/{name}.tsv"
    for name in (
        "roi_brain_pad",
        "roi_volume_correlation",
        "global_group_comparison",
        "roi_group_comparison",
        "voxel_group_comparison",
        "icc",
        "accuracy",
    )
}
LOCAL_TRUTH = "results/maps/stats/truth_validation.tsv"
LOCAL_PLANTED = "results/maps/stats/planted_response.tsv"
LOCAL_FIGURE = "results/report/local_maps.png"
DIFFAE_FIGURE = "results/report/diffae_reconstructions.png"
TRUTH_SUBJECTS = f"{BIDS_DIR}/derivatives/simulation/subjects.tsv"
TRUTH_REGIONS = f"{BIDS_DIR}/derivatives/simulation/regions.tsv"
RUN_NOTES = []  # what the run changed of its config by itself (report front page, summary)


def dataset_has(modality):
    """Whether the dataset holds any scan of ``modality`` (the simulated one: planned)."""
    if modality not in config["modalities"]:
        return False
    if SIMULATED:
        return modality in config["simulation"]["modalities"]
    return Path(BIDS_DIR).is_dir() and not discover_scans(BIDS_DIR, [modality]).empty


# a dataset without FLAIR (most): the models that read FLAIR are left out, the others run
if not APPLY and any(m.input == "flair" for m in base_models(config["models"])):
    if not dataset_has("FLAIR"):
        config["models"], left_out = without_input(config["models"], "flair")
        RUN_NOTES.append(
            f"No FLAIR scan in the dataset: the models that read FLAIR ({', '.join(left_out)}) "
            "were left out; the others ran on the T1w."
        )
        print(f"brainpad: {RUN_NOTES[-1]}", file=sys.stderr)
BASE_MODELS = base_models(config["models"])
MODELS = [m.name for m in BASE_MODELS]  # base models: cnn3d-t1w-cortex-2 (models/__init__.py)
FOLD_IDS = list(range(config["folds"]["k"]))
ARRAYS = {key: str(path) for key, path in array_files("results/arrays").items()}
# the cohort arrays of every input an image model reads (tissue maps always: the crop)
MODEL_INPUTS = list(
    dict.fromkeys(["tissue", *(m.input for m in BASE_MODELS if get_spec(m.name).kind == "image")])
)
INPUT_ARRAYS = {
    i: {k: str(p) for k, p in array_files("results/arrays", i).items() if k != "index"}
    for i in MODEL_INPUTS
}
USES_FLAIR = "flair" in MODEL_INPUTS
# apply mode with a bundle that has a T1w-only head: a session without FLAIR is predicted
# through it, so FLAIR is used where present and required nowhere
T1W_ONLY_HEAD = APPLY and "t1w_only" in json.loads(
    (BUNDLE_DIR / "ensemble" / "fits.json").read_text()
)
DIFFAE_MODELS = [m for m in BASE_MODELS if m.architecture == "diffae"]  # study 2's figure
TEMPLATES_DIR = f"{BUNDLE_DIR}/templates" if APPLY else "results/templates"
TEMPLATES = {
    key: str(path)
    for key, path in template_files(TEMPLATES_DIR, config["preprocess"]["voxel_size"]).items()
}
PREPROC_DIR = "results/preproc"

# Rules call `brainpad <command>`. In a conda env it runs from this checkout's src/;
# otherwise from the Python running Snakemake (the project venv), activated or not.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    shell.prefix(
        f"set -euo pipefail; export PYTHONPATH={Path(workflow.basedir) / 'src'}; "
        'brainpad() { python -m brainpad "$@"; }; '
    )
else:
    shell.prefix(f"set -euo pipefail; export PATH={Path(sys.executable).parent}:$PATH; ")


wildcard_constraints:
    folder=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?/anat",  # a scan's (brainpad.paths.scan_folder)
    scan=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    session=r"ses-[A-Za-z0-9]+",
    modality=r"[A-Za-z0-9]+",
    model=r"[a-z0-9_]+(-[a-z0-9]+)*",
    fold=r"[0-9]+",
    batch=r"batch-[0-9]+",


def simulation_settings():
    """The simulated cohort's settings (config `simulation` + `seed`)."""
    from brainpad.simulate.cohort import Settings

    return Settings.from_config(config)


def simulated_files(descriptions=True):
    """Files the simulate_cohort rule writes (optionally without dataset_description.json)."""
    from brainpad.simulate import expected_outputs

    files = [f"{BIDS_DIR}/{rel}" for rel in expected_outputs(simulation_settings())]
    return [f for f in files if descriptions or Path(f).name != "dataset_description.json"]


def truth_maps():
    """The simulation's true local brain-PAD map of each group."""
    return [f for f in simulated_files() if f.endswith("_desc-truelocalbrainPAD.nii.gz")]


def validated(files):
    """An input function that returns ``files(wildcards)`` once validate_inputs has passed.

    Jobs that compute from the scans take their inputs through it: Snakemake plans them
    only after the validate_inputs checkpoint has finished, so no computation starts on a
    dataset that fails validation. They do not take the manifest as an input, so a
    re-validation (a new participant, an edited participants.tsv) re-runs only the jobs
    whose own inputs changed. A dry run that must re-validate first lists every such job.
    """

    def after_validation(wildcards):
        checkpoints.validate_inputs.get()
        return files(wildcards)

    return after_validation


def bids_metadata():
    """dataset_description.json and participants.tsv as validate_inputs' inputs.

    For a real dataset only the ones that exist: a missing one is then reported by
    `brainpad validate` with its fix, not by Snakemake as a missing input.
    """
    files = {
        "description": f"{BIDS_DIR}/dataset_description.json",
        "participants": f"{BIDS_DIR}/participants.tsv",
    }
    return {k: f for k, f in files.items() if SIMULATED or Path(f).is_file()}


def sessions_tables():
    """A real dataset's sub-*/sub-*_sessions.tsv files (re-validated when they change)."""
    if SIMULATED:
        return []
    return sorted(str(p) for p in Path(BIDS_DIR).glob("sub-*/sub-*_sessions.tsv") if p.is_file())


def input_scans():
    """All scan files of the configured modalities, known before the run starts.

    For the simulated cohort they are planned from the config (the files do not exist
    yet); for a real dataset they are found from file names, without opening them.
    """
    if SIMULATED:
        wanted = tuple(f"_{m}.nii.gz" for m in config["modalities"])
        return [f for f in simulated_files() if "/anat/" in f and f.endswith(wanted)]
    return discover_scans(BIDS_DIR, config["modalities"])["path"].tolist()


def participant_selection():
    """`brainpad validate`'s --participant-label / --exclude-participant-label options."""
    return " ".join(
        f"--{key.replace('_', '-')} " + " ".join(config[key])
        for key in ("participant_label", "exclude_participant_label")
        if config[key]
    )


SELECTED = participant_ids(config["participant_label"])
EXCLUDED = participant_ids(config["exclude_participant_label"])


def log_path(name):
    """Log file of a rule (or rule + wildcards)."""
    return f"results/logs/{name}.log"


def memory(mb):
    """A rule's ``mem_mb``: ``mb`` on the first attempt, twice that on the first retry, ...

    With ``retries`` (the SLURM profile), a job killed for exceeding its memory is
    resubmitted with more.
    """
    return lambda wildcards, attempt: mb * attempt


def benchmark_path(name):
    """Benchmark TSV of a rule (or rule + wildcards)."""
    return f"results/benchmarks/{name}.tsv"


def t1w_scans(modality="T1w"):
    """T1w scans to preprocess, indexed by scan_id (participant_id, session, run, path).

    With ``modality``, the scans of another suffix instead (the sessions' FLAIRs).

    Scans whose subject has no participants.tsv row are left out (validate_inputs lists
    them in results/manifest_skipped.tsv); so are broken links and second copies of a
    scan, which validate_inputs reports (the plan must not fail before it can), and the
    participants that `participant_label` / `exclude_participant_label` leave out.
    """
    rows = [describe_scan(p) for p in input_scans()]
    columns = ["scan_id", "participant_id", "session", "run", "modality", "path"]
    table = pd.DataFrame([r for r in rows if r and r["modality"] == modality], columns=columns)
    if not SIMULATED:
        exists = table["path"].map(lambda p: Path(p).exists()).astype(bool)
        table = table[exists].drop_duplicates("scan_id")
        listed = listed_participants(BIDS_DIR)
        if listed is not None:  # else validate_inputs reports what is wrong
            table = table[table["participant_id"].isin(listed)]
    if SELECTED:
        table = table[table["participant_id"].isin(SELECTED)]
    return table[~table["participant_id"].isin(EXCLUDED)].set_index("scan_id")


PREPROC_FOLDER = f"{PREPROC_DIR}/{{folder}}"  # a scan's sub-*/[ses-*/]anat/ (a pattern)


def preproc_files(scan=None):
    """Declared outputs of one scan's preprocessing: the rule's wildcard patterns (no
    ``scan``) or the files of a concrete scan, in its ``sub-*/[ses-*/]anat/`` folder.

    Only the files the cohort-level rules read: every declared output costs Snakemake
    planning time per scan. The transforms, the preprocessed T1w, its brain mask and the
    QC montage are written beside them (brainpad.paths.output_paths).
    """
    paths = (
        output_paths(PREPROC_FOLDER, "{scan}") if scan is None else preproc_paths(PREPROC_DIR, scan)
    )
    return {k: str(paths[k]) for k in CONSUMED}


T1W_SCANS = t1w_scans()
T1W_PATHS = T1W_SCANS["path"].to_dict()  # scan_id -> file, looked up once per job
# a session's FLAIR goes through its T1w's preprocessing when a model reads FLAIR
FLAIR_PATHS = t1w_scans("FLAIR")["path"].to_dict() if USES_FLAIR else {}
# config preprocess.batches > 0: that many preprocessing jobs instead of one per scan
BATCHES = (
    scan_batches(T1W_SCANS.index, config["preprocess"]["batches"])
    if config["preprocess"]["batches"]
    else {}
)


def preproc_root(wildcards, input):
    """PREPROC_DIR, found above the first preprocessed file of ``input.maps``:
    above its sub-*/ folder or batches/ (params derived from the files, as --lint asks)."""
    path = Path(input.maps[0])
    return next(p for p in path.parents if p.name.startswith("sub-") or p.name == "batches").parent


def batch_qc_table(batch):
    """The QC table a preprocessing batch writes last (a wildcard pattern or a name)."""
    return f"{PREPROC_DIR}/batches/{batch}_qc.tsv"


def preprocessed(tissues=("gm", "wm")):
    """What the cohort-level steps wait for (each scan's maps, or each batch's QC table).

    The rules read the maps from PREPROC_DIR; with batches, a batch's QC table is written after all its scans' maps, so it stands
    for them.
    """
    if BATCHES:
        return [batch_qc_table(b) for b in BATCHES]
    return [preproc_files(scan)[tissue] for scan in T1W_SCANS.index for tissue in tissues]


def model_files(model, fold, maps=False):
    """Outputs of one model x fold training job (wildcard patterns or concrete names).

    Voxel models (``maps=True``) also write the brain-age maps of their scans.
    """
    folder = f"results/models/{model}/fold-{fold}"
    files = {"predictions": f"{folder}/predictions.tsv", "state": f"{folder}/model.pt"}
    return {**files, "maps": f"{folder}/maps.npy"} if maps else files


def bundle_settings():
    """The configuration a bundle must reproduce on new scans (stored in bundle.json)."""
    return {key: config[key] for key in BUNDLE_SETTINGS}


def harmonise_args():
    """`brainpad apply`'s harmonisation options (apply mode with harmonise.enabled)."""
    if not HARMONISE:
        return ""
    settings = config["harmonise"]
    cap = settings.get("site_controls")
    scale = "" if settings["site_scale"] else " --no-site-scale"
    return f"--harmonise --min-site-controls {settings['min_site_controls']}{scale}" + (
        f" --site-controls {cap}" if cap else ""
    )


def bundle_voxel_bias():
    """The local maps' voxelwise correction when a model maps brain age, else nothing."""
    return [LOCAL_MAPS["voxel_bias"]] if VOXEL_MODELS else []


def all_predictions():
    """Prediction tables of every configured model and fold."""
    return [model_files(m, f)["predictions"] for m in MODELS for f in FOLD_IDS]


def train_inputs(wildcards):
    """What a base model reads (its SPEC in src/brainpad/models/): the ROI table, or the
    cohort array of its input (3D volumes, 2D slices; blocks come from the volumes), the
    index, and the template's regions image when it is restricted to a region."""
    spec, base = get_spec(wildcards.model), parse_base_model(wildcards.model)
    if spec.reads == "roi":
        return {"folds": FOLDS, "roi": ROI_FEATURES}
    array = "slices" if spec.reads == "slices" else "volumes"
    files = array_files("results/arrays", base.input)
    inputs = {"folds": FOLDS, array: str(files[array]), "index": ARRAYS["index"]}
    if base.region != "whole":
        inputs["regions"] = TEMPLATES["regions"]
    return {**inputs, "mask": TEMPLATES["mask"]} if spec.kind == "voxel" else inputs


def train_data_args(wildcards, input):
    """The `brainpad train` options naming the model's data."""
    if "roi" in input.keys():
        return f"--roi {input.roi}"
    array = "slices" if "slices" in input.keys() else "volumes"
    regions = f" --regions {input.regions}" if "regions" in input.keys() else ""
    return f"--{array} {input[array]} --index {input.index}{regions}"


def model_settings(wildcards):
    """The config section of a base model's architecture, as JSON for `brainpad train`."""
    return json.dumps(config["models"][get_spec(wildcards.model).name])


def is_network(wildcards):
    """1 when the model is a network (gets a GPU when the executor has one), else 0."""
    return int(get_spec(wildcards.model).kind != "tabular")


VOXEL_MODELS = [m for m in MODELS if get_spec(m).kind == "voxel"]
WHOLE_MODELS = [m for m in MODELS if get_spec(m).kind != "voxel"]
# relevance maps: the configured 3D whole-brain networks (interpret.smk)
RELEVANCE_MODELS = [
    m.name
    for m in BASE_MODELS
    if m.architecture in config["interpret"]["models"] and get_spec(m.name).reads == "volumes"
]
RELEVANCE_METHODS = config["interpret"]["methods"]
INTERPRET_DIR = "results/interpret"
RELEVANCE = {
    "scans": f"{INTERPRET_DIR}/scans.tsv",
    **{
        f"{method}_{kind}": f"{INTERPRET_DIR}/{method}/{kind}.nii.gz"
        for method in RELEVANCE_METHODS
        for kind in ("signed", "absolute", "mean_signed", "mean_absolute")
    },
    **{
        f"{method}_{model}": f"{INTERPRET_DIR}/{method}/model-{model}_mean_absolute.nii.gz"
        for method in RELEVANCE_METHODS
        for model in RELEVANCE_MODELS
    },
}
RELEVANCE_STATS = {
    name: f"{INTERPRET_DIR}/{name}.tsv"
    for name in ("tests", "clusters", *(["truth", "truth_clusters"] if SIMULATED else []))
}
INTERPRET_FIGURE = "results/report/relevance.png"


def voxel_model_files(kind):
    """Per-fold ``predictions`` or ``maps`` of the (first) voxel model, if one is configured."""
    return [model_files(m, f, maps=True)[kind] for m in VOXEL_MODELS[:1] for f in FOLD_IDS]


def default_targets():
    """What `snakemake` builds: training, or in apply mode the new cohort's results."""
    targets = [MANIFEST, DERIVATIVES_DESCRIPTION, QC_TABLE, ROI_VOLUMES, BRAIN_AGE]
    targets += STATS.values()
    targets += [*REPORT_FIGURES.values(), *REPORT_TABLES.values(), REPORT_FRONT]
    if APPLY:
        return targets + ([LOCAL_MAPS["maps"]] if VOXEL_MODELS else [])
    targets += [DIFFAE_FIGURE] if DIFFAE_MODELS else []
    targets += [*RELEVANCE_STATS.values(), INTERPRET_FIGURE] if RELEVANCE_MODELS else []
    return targets + [FOLDS, ARRAYS["index"], *local_targets(), BUNDLE]


def local_targets():
    """Targets the voxel model adds to the default target (maps, statistics, figure, truth)."""
    if not VOXEL_MODELS:
        return []
    targets = [LOCAL_MAPS["age_dependence"], *LOCAL_STATS.values(), LOCAL_FIGURE]
    return targets + [LOCAL_TRUTH] if SIMULATED else targets


def local_table(name, caption, label, category="Local brain age"):
    """One local-statistics table, registered in the HTML report."""
    return report(
        LOCAL_STATS[name],
        caption=f"../report/{caption}.rst",
        category=category,
        labels={"table": label},
    )
