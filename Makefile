# cifar_bench: every target installs what it needs first (a stamp redone when setup.cfg or pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?=
ARGS ?=
DATA ?= data
CKPT ?=
IMAGES ?=
LOGS ?= lightning_logs
STUDY_LOGS ?= lightning_logs/study
SEEDS ?= 0
VGG_WEIGHTS ?=
RESULTS ?=
TRIALS ?= 20
# Processes make test spreads the fast suite over (pytest-xdist), each computing on one thread: one per core.
TEST_WORKERS ?= 2
# The folder make report reads and writes into (its evaluated runs: <DIR>/<model>/<run>/evaluation/).
DIR ?= results
# The model names as the package derives them from configs/ (plain Python, no install needed; read only when used).
MODELS = $(shell PYTHONPATH=. $(PYTHON) -c 'from cifar_bench.configs import model_names; print(*model_names())')

comma := ,
empty :=
space := $(empty) $(empty)
# "0 1 2" -> [0,1,2]: the list syntax of cifar-bench's options
list = [$(subst $(space),$(comma),$(strip $(1)))]
# A value as one shell word, whatever it holds (spaces, quotes, ;): every variable but ARGS, which is flags.
quote = '$(subst ','\'',$(1))'


.PHONY: help install lint train test test-all analyze bench tensorboard clean evaluate predict compare study report sweep

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  models: $(MODELS)"

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev extras

lint: $(STAMP) ## ruff: lint checks and formatting (what CI runs before the tests)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

train: $(STAMP) ## train one model: make train MODEL=cnn [ARGS="--trainer.max_epochs 5"]
	@if [ "$(words $(MODEL))" != 1 ] || [ -z "$(filter $(MODEL),$(MODELS))" ]; then \
		echo $(call quote,error: unknown MODEL '$(MODEL)': choose one of $(MODELS)) >&2; exit 2; fi
	$(BIN)/cifar-bench fit --config $(call quote,configs/$(MODEL).yaml) $(ARGS)

test: $(STAMP) ## the fast suite, a few minutes: every test but the slow ones (subprocess trainings, kills, DDP) [TEST_WORKERS=2]
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) $(ARGS)

test-all: $(STAMP) ## the whole suite, slow tests included (what CI runs)
	$(BIN)/python -m pytest -q $(ARGS)

analyze: $(STAMP) ## describe the dataset: tables and a sample grid in reports/analysis
	$(BIN)/cifar-bench analyze --data_dir $(call quote,$(DATA)) $(ARGS)

evaluate: $(STAMP) ## evaluate a run: make evaluate CKPT=lightning_logs/cnn/version_0/checkpoints/last.ckpt
	@if [ -z $(call quote,$(CKPT)) ]; then echo "error: pass CKPT=<run>/checkpoints/<file>.ckpt (or a run folder)" >&2; exit 2; fi
	$(BIN)/cifar-bench evaluate --ckpt $(call quote,$(CKPT)) $(ARGS)

predict: $(STAMP) ## predict image files/folders/globs (none: the test set): make predict CKPT=<run> IMAGES="cat.png photos/"
	@if [ -z $(call quote,$(CKPT)) ]; then echo "error: pass CKPT=<run>/checkpoints/<file>.ckpt (or a run folder)" >&2; exit 2; fi
	$(BIN)/cifar-bench predict --ckpt $(call quote,$(CKPT)) $(if $(strip $(IMAGES)),--inputs $(call quote,$(call list,$(IMAGES)))) $(ARGS)

compare: $(STAMP) ## the results table over every evaluated run in lightning_logs/ [LOGS=dir]
	$(BIN)/cifar-bench compare $(call quote,$(LOGS)) $(ARGS)

study: $(STAMP) ## train, evaluate and compare all models; rerun to resume [SEEDS="0 1 2" MODEL="mlp cnn" VGG_WEIGHTS=f RESULTS=results ARGS=...]
	$(BIN)/cifar-bench study --save_dir $(call quote,$(STUDY_LOGS)) --data_dir $(call quote,$(DATA)) \
		--seeds $(call quote,$(call list,$(SEEDS))) $(if $(MODEL),--models $(call quote,$(call list,$(MODEL)))) \
		$(if $(VGG_WEIGHTS),--vgg_weights $(call quote,$(VGG_WEIGHTS))) $(if $(RESULTS),--results $(call quote,$(RESULTS))) -- $(ARGS)

report: $(STAMP) ## the study's report from the evaluated runs in DIR (default results): DIR/report.html and report.md [DATA=data]
	$(BIN)/cifar-bench report $(call quote,$(DIR)) --data_dir $(call quote,$(DATA)) $(ARGS)

bench: $(STAMP) ## time the package against the study's plain loop (bench/bench.json) [ARGS='--models "[cnn]"']
	$(BIN)/python -m benchmarks --data_dir $(call quote,$(DATA)) --batch_sizes "[64,256,1024]" --threads "[1,2]" --levers true --accuracy_check true --store_images 5000 $(ARGS)

tensorboard: $(STAMP) ## watch training in TensorBoard (lightning_logs/)
	$(BIN)/tensorboard --logdir lightning_logs

clean: ## remove the virtual environment and caches (keeps data and logs)
	rm -rf $(VENV) .pytest_cache *.egg-info

sweep: $(STAMP) ## search a model's recipe with Optuna on validation accuracy: make sweep MODEL=mlp TRIALS=8 [ARGS="-- --data.train_size 5000"]
	@if [ "$(words $(MODEL))" != 1 ] || [ -z "$(filter $(MODEL),$(MODELS))" ]; then \
		echo $(call quote,error: unknown MODEL '$(MODEL)': choose one of $(MODELS)) >&2; exit 2; fi
	$(BIN)/cifar-bench sweep --model $(call quote,$(MODEL)) --trials $(call quote,$(TRIALS)) $(ARGS)
