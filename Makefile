# The two commands: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
CORES  ?= 2

.PHONY: demo demo-full test lint install clean slurm-deps screenshot-deps screenshots

install: $(STAMP)

# Re-installs only when pyproject.toml changes; the second call is a no-op.
# torch is installed first with its exact pin so pip takes the local CPU build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[workflow,test]"
	touch $(STAMP)

# The whole DAG on the simulated cohort, then the HTML report (results/report.html) and
# the headline numbers. demo-full: the larger demo (config/demo-full.yaml) into the same
# results/ (switching sizes re-runs everything).
demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --report results/report.html
	$(BIN)/brainpad summary --results results

demo-full: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/demo-full.yaml
	$(BIN)/snakemake --profile profiles/local --configfile config/demo-full.yaml \
	    --report results/report.html
	$(BIN)/brainpad summary --results results

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

# Debian packages for the localhost SLURM cluster of tests/workflow/test_slurm.py (needs root);
# without them that test is skipped and says why.
SLURM_BINARIES := /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged
slurm-deps:
	@if ls $(SLURM_BINARIES) >/dev/null 2>&1; then echo "SLURM and munge are installed"; \
	else DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	     slurmctld slurmd slurm-client munge; fi

# Debian's Chromium for the report's screenshots (tests/report/test_screenshot.py; needs
# root); without it those tests are skipped and say why.
screenshot-deps:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium is installed"; \
	else DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; fi

# The demo report's front page and relevance figure as a browser shows them (docs/).
screenshots: $(STAMP)
	$(BIN)/brainpad screenshot --size 1400 1800 --out docs/screenshot-front.png
	$(BIN)/brainpad screenshot --category Interpretability \
	    --figure results/report/relevance.png --out docs/screenshot-relevance.png

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
