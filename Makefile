# Two commands a newcomer needs: `make demo` (bring the local stack up — embedded S3/SQS, Ray,
# Serve, driver — send the bundled samples through the HTTP API with the toy model, print old -> new)
# and `make test` (the whole suite). Both build the virtual environment from nothing; `make test`
# also installs Debian's chromium + chromedriver for the browser test if they are missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# checkov pins an old `packaging` that breaks pytest: it lives in a virtual environment of its own.
CHECKOV := .venv-checkov/bin/checkov

.PHONY: demo up check test faults venv browser toy-checkpoint samples clean

# Every install is pinned by constraints.txt (`python scripts/lock.py` regenerates it).
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 13) else "renamer-ray needs Python 3.10 to 3.12, and $(PYTHON) is " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/renamer-ray demo

up: $(STAMP)
	$(VENV)/bin/renamer-ray up

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }

$(CHECKOV):
	python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --upgrade pip
	.venv-checkov/bin/pip install -q 'checkov>=3.2,<4'

# The fast tier while working (under a minute here): unit tests and the API in-process. No Ray,
# no browser, no child processes; moto's server on 127.0.0.1 for the API tests.
check: $(STAMP)
	$(PY) -m pytest tests/unit tests/integration/test_api.py tests/integration/test_api_schema.py

# Everything, tier by tier (unit, integration, e2e): what CI runs.
test: $(STAMP) browser $(CHECKOV)
	$(PY) -m pytest

# The fault-injection suite alone (part of `make test` too); prints the fault table at the end.
faults: $(STAMP)
	$(PY) -m pytest tests/e2e/faults tests/integration/test_driver.py

# Regenerate the shipped toy checkpoint and the sample folder (deterministic; a few minutes on CPU).
toy-checkpoint: $(STAMP)
	$(PY) scripts/train_toy_checkpoint.py

samples: $(STAMP)
	$(PY) scripts/make_samples.py

clean:
	rm -rf renamed .renamer-ray .pytest_cache .hypothesis cluster/*.rendered.yaml cluster/service.env
