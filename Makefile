# One command each for a fresh machine: `make demo` and `make test` create .venv and install
# what is missing. torch is pinned first to the CPU wheel on disk; `constraints.txt` keeps any
# later package from pulling a multi-GB CUDA build in its place.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
STAMP   := $(VENV)/.spinnq-installed
PYTEST  := $(PY) -m pytest

.PHONY: install demo test test-all chromium lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev,dvs,qat,bench,interop,sweep,control]'
	# norse and spikingjelly declare torchvision (spikingjelly also torchaudio), which neither
	# imports for what spinnq uses; PyPI's torchvision/torchaudio wheels do not load beside
	# the CPU torch (or pull another torch build), so both come without declared dependencies.
	$(PIP) install -q --no-deps norse==1.1.0 spikingjelly==2.0.0
	# sinabs 3.1.3 declares nir<=1.0.4 (spinnq reads with nir 1.0.8; its to_nir/from_nir work
	# with it, tests/interop/test_sinabs_import.py) and samna (SynSense's chip driver, not
	# imported for NIR): installed without them; pbr is what it imports for its version.
	$(PIP) install -q --no-deps sinabs==3.1.3 pbr==7.1.3
	# neurobench 2.3.0 (the activity metrics beside the joules, spinnq/s2/activity.py) declares
	# torchaudio, which only its audio pre-processors import (PyPI's torchaudio pulls another
	# torch build); its metrics import torch, snntorch and tqdm: in the extras above.
	$(PIP) install -q --no-deps neurobench==2.3.0
	$(PY) -c "import torch, nir, snntorch, norse, tonic, gymnasium, Box2D, rockpool, ray.tune, optuna, spikingjelly.activation_based.nir_exchange, sinabs, snn_mlir, neurobench.metrics.workload, neurobench.models; print('spinnq env ok: torch', torch.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spinnq run cartpole

test: $(STAMP)
	$(PYTEST) -q -x --timeout=600

# The slow suite renders report.html in headless Chromium (Debian's package).
chromium:
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

test-all: $(STAMP) chromium
	$(PYTEST) -q -m "" --timeout=7200

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/emulator_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
