# Two commands do all set-up on a fresh machine:
#   make repro   create .venv if missing, install faceres, run the DVC pipeline (dvc repro)
#   make test    same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed

.PHONY: setup browser repro study test test-fast clean-venv

# `dvc plots show`'s page template with the Vega libraries inlined (.dvc/config plots.html_template): the
# interactive plots then draw offline, where DVC's own page loads them from a CDN.
PLOTS_TEMPLATE := .dvc/plots/offline.html

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(PLOTS_TEMPLATE): $(STAMP)
	$(BIN)/faceres plots-template --out $@

setup: $(STAMP) $(PLOTS_TEMPLATE)

repro: setup
	$(BIN)/dvc repro

# The reference study (issues 14, 24): every arm on real aligned faces at 64 px, profile `study` (2 epochs each),
# trained with 3 seeds (main) and 2 (every ablation arm), each scored on the validation split at every quarter
# of its training (its trajectory) and at the end on a test split of identities no earlier study or calibration
# scored (none among the first STUDY_SEEN images), as one DVC experiment named "study"; about 4 hours on 2 cores.
# Stopped, it continues where it was when run again (finished stages come from DVC's run cache, a stopped
# training from its last checkpoint, at most 10 minutes back); then `faceres publish-results` copies the report,
# tables, figures and main generator into docs/results/ and rewrites the README's results tables. STUDY_DATA: a
# folder with images/ and identities.csv (CelebA's layout); FFHQ/CelebA-HQ work the same.
STUDY_DATA ?= ../shared/data/celeba-10k
STUDY_IMAGES ?= 4200
STUDY_SEEN ?= 3600
# STUDY_STAGES: only these stages (and what they need), without publishing, e.g. every training first:
#   make study STUDY_STAGES="train-main train train-main-seed train-seed"
STUDY_STAGES ?=
study: setup
	$(BIN)/dvc exp run -n study $(STUDY_STAGES) -S profile=study -S data.source=folder \
	  -S data.folder.train_dir=$(STUDY_DATA)/images -S data.folder.identities_csv=$(STUDY_DATA)/identities.csv \
	  -S data.folder.upscale=true -S data.folder.limit=$(STUDY_IMAGES) -S data.folder.test_unseen_after=$(STUDY_SEEN) \
	  -S data.val_fraction=0.06 -S 'degrade.splits=[test,val]' \
	  -S 'ablations.seeds.main=[1,2]' -S 'ablations.seeds.arms=[1]'
	$(if $(STUDY_STAGES),,$(BIN)/faceres publish-results)

# The human-study page test drives Debian's Chromium: installed here when possible (root + apt-get),
# otherwise that one test is skipped with its reason.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "note: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium/chromedriver absent; the browser test will be skipped"; fi; \
	fi

# pytest exits 5 when it collects no tests: that fails here, as any non-zero status does.
# Two workers (pytest-xdist): the DVC experiment tests (one module, mostly single-threaded stage processes) run
# beside the rest of the suite. --dist loadfile keeps a module on one worker, so its fixture repository is built
# once; loadgroup's xdist_group marks are silently ignored under pytest 9.2 (pytest-xdist issue #1386), which
# built that repository on both workers (+5 min). --no-loadscope-reorder keeps tests/conftest.py's order, which
# puts that module first (xdist would otherwise start files with many tests first and that one near the end).
# PYTEST_ARGS replaces this, e.g. make test PYTEST_ARGS="-k metrics".
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder
test: setup browser
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop while editing: the suite without the slow tests (training runs, DVC experiments, torchrun) and
# without those that need the pretrained-weights cache; minutes instead of a quarter of an hour. `make test`
# before a commit.
test-fast: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -n 2 -m "not slow and not needs_weights"

clean-venv:
	rm -rf $(VENV)
