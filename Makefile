# Two commands do all the set-up on a fresh machine:
#   make demo   segment a synthetic CBCT with the shipped model (STL, report, picture in demo_output/)
#   make test   run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The exact CPU build first: a looser request would pull several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,mesh]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m TeethSegmentationLib demo --output demo_output

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) scripts/benchmark_segment.py --fov both --baseline
	$(PY) scripts/benchmark_train.py

model: $(STAMP)
	$(PY) scripts/train_default_model.py

clean:
	rm -rf $(VENV) demo_output
