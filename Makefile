# transformer_lite: every target sets up what it needs. `make book` and `make test` work on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# notebooks that train a model: tested on their own, with every core, after the rest
TRAINING := notebooks/07_train.ipynb
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg

.PHONY: help setup export check lint format sync execute test test-unit test-notebooks book zh bench bench-record lab clean

help:
	@echo "make book      build the HTML book into _build/html, the Chinese edition into _build/html/zh (sets up .venv first)"
	@echo "make zh        write the Chinese edition's notebooks and pages into zh/ (from book/zh/*.yml)"
	@echo "make test      sync check and lint, unit and browser tests, every notebook re-run and compared"
	@echo "make lab       open the chapters in JupyterLab (ARGS=\"--no-browser --port 8899\")"
	@echo "make sync      bring each notebook and its .py pair together; refuses when both changed (PREFER=py|ipynb)"
	@echo "make execute   sync, export, then re-run the notebooks in place (NOTEBOOKS=... for some)"
	@echo "make export    write transformer_lite/ from the notebooks' export cells"
	@echo "make format    ruff-format the notebooks, tools and tests, keeping the pairs in sync"
	@echo "make check     fast: package and .py pairs agree with the notebooks; the Chinese edition is up to date; ruff is clean"
	@echo "make bench     benchmarks against PyTorch's own modules (minutes); JSON in _build/bench/"
	@echo "make bench-record  the same plus make test/book wall times, into benchmarks/results/"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# build matplotlib's font cache now, so its one-time message never lands in a notebook's output
	MPLBACKEND=Agg $(BIN)/python -c "import matplotlib.pyplot"
	touch $@

export: $(STAMP)
	$(BIN)/python tools/nbexport.py export

check: $(STAMP)
	$(BIN)/python tools/nbexport.py check
	$(BIN)/python tools/zh.py check
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .

lint: check

# sync first, so edits made in a .py reach its notebook before ruff rewrites the notebook
format: $(STAMP)
	$(BIN)/python tools/nbsync.py $(NOTEBOOKS)
	$(BIN)/ruff format $(NOTEBOOKS) tools tests book benchmarks experiments
	$(BIN)/python tools/nbsync.py $(NOTEBOOKS)

# Never "the newer file wins": see tools/nbsync.py. PREFER=py or PREFER=ipynb picks a side.
PREFER ?=
sync: $(STAMP)
	$(BIN)/python tools/nbsync.py $(if $(PREFER),--prefer $(PREFER)) $(NOTEBOOKS)

# Export first: a chapter imports what the chapters before it export. Streams are merged after
# execution, so a cell's prints are stored as one output however the kernel chunked them.
execute: sync
	$(BIN)/python tools/nbexport.py export
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 \
	    --ExecutePreprocessor.record_timing=False \
	    --NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
	    $$nb || exit 1; \
	done
	$(BIN)/python tools/nbsync.py $(NOTEBOOKS)

# Two pytest workers, one thread each: two processes that each start a thread per core would
# oversubscribe the cores and run many times slower. --dist loadfile keeps a notebook on one worker.
# The training chapter runs alone afterwards, with every core, so it keeps its time budget.
# The browser test (tests/test_browser.py) needs Debian's Chromium; as root it is installed here.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "The browser test needs Chromium at $(CHROMIUM): sudo apt-get install chromium"; exit 1; \
	fi

# The Chinese pages (and the attention gallery's labels) need a CJK font: Debian's WenQuanYi
# Micro Hei, installed here as root. Without it Chinese text is drawn as boxes.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
$(CJK_FONT):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null; \
	else \
	  echo "Chinese text needs a CJK font at $(CJK_FONT): sudo apt-get install fonts-wqy-microhei"; exit 1; \
	fi

test: check $(CHROMIUM) $(CJK_FONT)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests $(NBVAL) \
	  $(filter-out $(TRAINING),$(NOTEBOOKS))
	$(BIN)/python -m pytest $(NBVAL) $(TRAINING)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests

test-notebooks: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile $(NBVAL) \
	  $(filter-out $(TRAINING),$(NOTEBOOKS))
	$(BIN)/python -m pytest $(NBVAL) $(TRAINING)

# Both editions: the English into _build/html, the Chinese (generated into zh/ from the same
# notebooks and book/zh/*.yml, refused while a translation is missing or stale) into _build/html/zh.
JB_BUILD := $(BIN)/jupyter-book build --builder html --warningiserror --nitpick --keep-going
book: zh
	$(JB_BUILD) .
	$(JB_BUILD) zh --path-output _build/zh
	rm -rf _build/html/zh
	cp -r _build/zh/_build/html _build/html/zh

zh: $(STAMP)
	$(BIN)/python tools/zh.py build --out zh

# Benchmarks: ratios against PyTorch's modules measured in the same run (never a timed test).
# bench-record rewrites the run the book's Performance appendix reads; re-execute that page after.
bench: $(STAMP)
	$(BIN)/python -m benchmarks --out _build/bench/results.json

bench-record: $(STAMP)
	$(BIN)/python -m benchmarks --wall --out benchmarks/results/cpu.json

# Rooted at the repository (so jupytext.toml is in sight, though each notebook also carries
# its pairing), opening notebooks/. ARGS passes options on, e.g. on a remote machine:
#   make lab ARGS="--no-browser --port 8899"
ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) \
	  --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks $(ARGS)

clean:
	rm -rf _build .pytest_cache zh
