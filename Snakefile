# brainpad: brain age from BIDS T1w MRI. `make demo` runs this on the simulated cohort.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# the simulator exists only for the simulated cohort: it never writes into a real dataset
if SIMULATED:

    include: "workflow/rules/simulate.smk"


include: "workflow/rules/inputs.smk"
include: "workflow/rules/preprocess.smk"


# apply mode (`bundle` set) trains nothing: the bundle's models give the brain ages
if not APPLY:

    include: "workflow/rules/cohort.smk"
    include: "workflow/rules/harmonise.smk"
    include: "workflow/rules/training.smk"
    include: "workflow/rules/ensemble.smk"
    include: "workflow/rules/local.smk"
    include: "workflow/rules/interpret.smk"


include: "workflow/rules/stats.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bundle.smk"


rule all:
    default_target: True
    input:
        default_targets(),
