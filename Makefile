# Two commands a newcomer needs: `make demo` (rename the bundled samples with the toy model on a
# local Ray) and `make test` (the whole suite). Both build the virtual environment from nothing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test venv toy-checkpoint samples clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/renamer-ray rename --model toy-shapes

test: $(STAMP)
	$(PY) -m pytest

# Regenerate the shipped toy checkpoint and the sample folder (deterministic; a few minutes on CPU).
toy-checkpoint: $(STAMP)
	$(PY) scripts/train_toy_checkpoint.py

samples: $(STAMP)
	$(PY) scripts/make_samples.py

clean:
	rm -rf renamed .pytest_cache .hypothesis
