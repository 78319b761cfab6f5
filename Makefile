# Set-up is two commands on a fresh machine: `make run` and `make test`. Both create or update
# .venv; re-running is a no-op until pyproject.toml or the constraints file changes. Every
# version installed comes from requirements/constraints.txt, so a new upstream release cannot
# reach a fresh machine until `make lock` is run and the tests pass with it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
CONSTRAINTS := requirements/constraints.txt

.PHONY: venv run test lint format bench model cross stability honesty package test-package bench-package clean lock mutation

# pip byte-compiles every module it installs one file at a time, a quarter of the install's time
# here; compileall does the same on every core at once (16 s against about 25 s). It is not left
# to the first import: with PYTHONDONTWRITEBYTECODE set, as on some machines, nothing would ever
# be cached and every process would compile torch again (3.2 s an import against 1.7 s).
# compileall's exit status is ignored, as pip ignores the same errors: a few template files in
# the wheels (PySide6's deploy recipes, a Python 3.12 test of torch) are not Python 3.11.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --no-compile -c $(CONSTRAINTS) -e '.[test,dev,cluster]'
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	touch $(STAMP)

# Re-resolve every dependency to the newest allowed release in a scratch venv and write the
# exact versions to $(CONSTRAINTS). Run the tests before committing the result.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip --disable-pip-version-check --quiet install -e '.[test,dev,eval,cluster]'
	( echo "# Exact versions for make run / make test; regenerate with make lock (see Makefile)."; \
	  echo "# Python $$(build/lock-venv/bin/python -c 'import platform; print(platform.python_version())')"; \
	  build/lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e ' ) > $(CONSTRAINTS).part
	mv $(CONSTRAINTS).part $(CONSTRAINTS)
	rm -rf build/lock-venv

venv: $(STAMP)

run: $(STAMP)
	@sh scripts/check-qt-deps.sh
	$(BIN)/facecomic

# Two pytest processes at once, each on a fixed part of tests/, one seed (scripts/run_tests.py);
# TEST_ARGS="--jobs 1" runs one, TEST_ARGS="--seed N" replays an order.
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/run_tests.py $(TEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The bundled default model: the default recipe (pretrained features, the linear head),
# trained by our own CLI on the three real samples in ../shared (face2comics, diverse, styles),
# gathered into one folder per class (see assets/MODEL.md). The run reports its holdout first;
# --refit-all then retrains the chosen setting on every image for the file that ships. First, the
# embeddings of the synthetic non-faces that every default run's "not a face" scorer learns
# against are written to assets/ too, so no first run spends seconds on them.
SHARED_DATA ?= ../shared/data
MODEL_SOURCES := face2comics-sample diverse-sample styles-sample
MODEL_DATA := build/default-model-data
model: $(STAMP)
	rm -rf $(MODEL_DATA)
	for cls in faces comics; do for src in $(MODEL_SOURCES); do \
		mkdir -p $(MODEL_DATA)/$$cls/$$src && cp $(SHARED_DATA)/$$src/$$cls/* $(MODEL_DATA)/$$cls/$$src/; done; done
	rm -f assets/non-faces-*.npz
	$(BIN)/python -c "from trainer.features.non_face_rows import write_non_face_asset; \
		from trainer.features.registry import featurizer_for; from trainer.common.configs import TrainConfig; \
		print(write_non_face_asset(featurizer_for(TrainConfig().features), 'assets'))"
	$(BIN)/facecomic-train $(MODEL_DATA) --seed 0 --refit-all \
		--no-cache --out assets/facecomic-default.safetensors --json assets/facecomic-default.json
	rm -rf $(MODEL_DATA)

# Train on some samples, score on another; the spread over seeds (docs/accuracy.md).
cross: $(STAMP)
	$(BIN)/python -m bench.cross_source $(CROSS_ARGS)

# Each sample held out in turn, seeds 0-9: how much the answers depend on the seed
# (docs/accuracy.md); STABILITY_ARGS=--only default runs just the default recipe and the one before it.
stability: $(STAMP)
	$(BIN)/python -m bench.stability $(STABILITY_ARGS)

# The evaluation-only extra (scikit-image's sample pictures), pinned like everything else.
EVAL_STAMP := $(VENV)/.installed-eval
$(EVAL_STAMP): $(STAMP)
	$(PIP) install -c $(CONSTRAINTS) -e '.[test,dev,eval,cluster]'
	touch $(EVAL_STAMP)

# "Not a face" and the other flags on pictures nothing trained on (docs/how-it-works.md).
honesty: $(EVAL_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m bench.honesty $(HONESTY_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run_bench $(BENCH_ARGS)

# The self-contained app in dist/FaceComic/ (see build.spec); `make test-package` checks it.
package: $(STAMP)
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN build.spec

bench-package: $(STAMP)
	$(BIN)/python -m bench.package_bench $(BENCH_ARGS)

test-package: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m packaging -p no:cacheprovider

# Mutation testing of the file-safety core with mutmut (pinned extra; [tool.mutmut] in
# pyproject.toml; docs/development.md). Not part of `make test`: minutes, two workers. The
# score per file, and per file as issue 24 named them, comes from scripts/mutation_score.py,
# which fails under 85%.
MUTATION_STAMP := $(VENV)/.installed-mutation
$(MUTATION_STAMP): $(STAMP)
	$(PIP) install -c $(CONSTRAINTS) -e '.[test,dev,cluster,mutation]'
	touch $(MUTATION_STAMP)

MUTATION_EXAMPLES ?= 10
mutation: $(MUTATION_STAMP)
	rm -rf mutants && mkdir -p build
	QT_QPA_PLATFORM=offscreen FACECOMIC_PROPERTY_EXAMPLES=$(MUTATION_EXAMPLES) $(BIN)/mutmut run --max-children 2 > build/mutation-run.log 2>&1 \
		|| { tail -40 build/mutation-run.log; exit 1; }
	tail -3 build/mutation-run.log
	$(BIN)/python scripts/mutation_score.py

clean:
	rm -rf build dist .pytest_cache .ruff_cache
