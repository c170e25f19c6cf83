# lss: two commands set everything up on a fresh machine.
#   make book   -- environment, phantom data, every chapter executed by papermill, HTML
#   make test   -- environment, unit tests and every chapter executed by nbmake
# On the real data:  make book DATA=/path/to/rsna-2024-lumbar-spine-degenerative-classification EPOCHS=20

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
EXTRAS   ?= tf,book,dev
# Data root used by the book. The default is the synthetic phantom, made on demand.
PHANTOM  := data/phantom
DATA     ?= $(PHANTOM)
N_STUDIES ?= 200
SEED     ?= 0
# Leave empty to use each chapter's own default (sized for a 2-core CPU).
EPOCHS   ?=
BUILD    ?= _build
PYTEST_ARGS ?=

.PHONY: help env phantom chapters book test test-backends lint sync sync-install kits kaggle-kit clean

help:
	@echo "make book   - build the Jupyter Book (phantom data by default; DATA=... EPOCHS=... for real data)"
	@echo "make test   - ruff, then all tests, the chapters included"
	@echo "make test-backends - the model, training and device tests again under JAX and PyTorch (CPU)"
	@echo "make lint   - ruff on the package, tests and chapters"
	@echo "make sync   - re-pair book/*.py (jupytext percent) with book/*.ipynb"
	@echo "make sync-install - rewrite every chapter's Colab install cell for the release, then sync"
	@echo "make kits   - student and instructor notebooks of every chapter in $(BUILD)/kits"
	@echo "make kaggle-kit - lss and its pure-Python wheels for an offline Kaggle install, in $(BUILD)/kaggle-kit"

# The environment: created when missing, refreshed when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

env: $(VENV)/.installed

# The phantom is only ever (re)made at its own default path; a real DATA root is used as is.
$(PHANTOM)/PHANTOM.json: | $(VENV)/.installed
	$(PY) data_scripts/make_phantom.py --out $(PHANTOM) --n-studies $(N_STUDIES) --seed $(SEED) --overwrite

phantom: $(PHANTOM)/PHANTOM.json

chapters: env $(if $(filter $(PHANTOM),$(DATA)),phantom)
	$(PY) book/run_chapters.py --data $(abspath $(DATA)) --out $(BUILD)/executed $(if $(EPOCHS),--epochs $(EPOCHS))

# Staging also writes the course kits (student and instructor notebooks) into
# $(BUILD)/site/_static/notebooks, where the syllabus links to them.
book: chapters
	$(PY) book/run_chapters.py --stage-only --out $(BUILD)/executed --site $(BUILD)/site
	$(VENV)/bin/jupyter-book build $(BUILD)/site --warningiserror --nitpick --keep-going
	@echo "HTML: $(BUILD)/site/_build/html/index.html"

# ruff first (style, and the package's size rules), then the unit tests and the
# package's doctests, then every chapter in order (nbmake runs each in book/ on its
# defaults; the chapters' .py twins are not collected). The cell timeout is per cell:
# chapter 6's comparison cell takes about 7 minutes on an idle 2-core machine and took
# over 20 on a busy CI machine (4-5x slower than idle in the same run), hence an hour.
NBMAKE_TIMEOUT ?= 3600
test: env lint
	LSS_PROGRESS=0 $(PY) -m pytest tests lss book --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) --ignore-glob='book/*.py' $(PYTEST_ARGS)

# The same Keras code under the two other backends, on CPU: JAX and PyTorch CPU builds
# are added to the environment (TensorFlow stays the default backend), then the tests of
# the model, training, the localiser, interpretation and devices run once per backend.
BACKENDS ?= jax torch
BACKEND_TESTS ?= tests/test_model.py tests/test_train.py tests/test_localiser.py \
	tests/test_interpret.py tests/test_accelerate.py tests/test_distribution.py
$(VENV)/.backends: pyproject.toml | $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[$(EXTRAS),backends]"
	@touch $@

# Left out, as they exercise nothing of the backend that the other tests do not:
# test_builds_and_trains_under_jax (the TensorFlow run's JAX check in a subprocess; the
# JAX run here is that check), and the CLI, per-epoch line and epoch-timer tests (argument
# parsing, printing, wall time; training, evaluate and predict run in the other tests).
# Each backend's wall time is printed (JAX 219 s, torch 37 s on a shared 2-core machine,
# load 3.4-6.6); CI's budget for both is about 12 minutes.
BACKEND_PYTEST ?= -p no:cacheprovider -k "not (test_builds_and_trains_under_jax \
	or test_cli_end_to_end or test_verbose_2_prints or test_history_records_epoch_seconds)"
test-backends: env $(VENV)/.backends
	@set -e; for b in $(BACKENDS); do \
	  echo "== KERAS_BACKEND=$$b"; t0=$$(date +%s); \
	  KERAS_BACKEND=$$b $(PY) -m pytest $(BACKEND_TESTS) $(BACKEND_PYTEST) $(PYTEST_ARGS); \
	  echo "== KERAS_BACKEND=$$b: $$(( $$(date +%s) - t0 )) s"; \
	done

lint: env
	$(VENV)/bin/ruff check lss tests data_scripts benchmarks book

sync: env
	$(VENV)/bin/jupytext --sync book/[0-9]*.py

# The install cell pins the release: pyproject.toml's version, _config.yml's repository.
# Run after changing either (tests/test_book.py fails until the cells match).
sync-install: env
	$(PY) book/run_chapters.py --sync-install
	$(VENV)/bin/jupytext --sync book/[0-9]*.py

kits: env
	$(PY) book/run_chapters.py --kits $(BUILD)/kits

# Upload the folder as a Kaggle dataset; a code submission installs lss from it offline.
kaggle-kit: env
	$(PY) data_scripts/kaggle_kit.py --out $(BUILD)/kaggle-kit

clean:
	rm -rf $(BUILD) .pytest_cache
