# Everything installs from python3 and the package registries into .venv.
# Re-running a target does not reinstall: .venv/.installed is the stamp.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PIPQ := $(PIP) install -q --disable-pip-version-check -c constraints.txt

.PHONY: install test test-e2e test-all lint docs demo demo-full clean install-mmpose13 test-mmpose13

install: $(STAMP)

$(STAMP): constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# Build tools first: xtcocotools and chumpy are built from source
	@# against this numpy (the xtcocotools wheel targets numpy 1.x) and
	@# chumpy's setup imports pkg_resources (setuptools<81).
	$(PIPQ) setuptools wheel Cython numpy
	$(PIPQ) torch torchvision
	$(PIPQ) --no-build-isolation --no-binary xtcocotools xtcocotools chumpy
	$(PIPQ) --no-build-isolation -e '.[tests,lite,deploy,docs]'
	@# MTCNN's weight files, for tools/infer.py's default face detector: the
	@# package is never imported (it pins torch<2.3 and numpy<2), so it comes
	@# without its dependencies.
	$(PIPQ) --no-deps facenet-pytorch
	$(PY) -c 'import mmaniso, mmpose, xtcocotools.coco; print("mmaniso", mmaniso.__version__, "on mmpose", mmpose.__version__)'
	touch $(STAMP)

# The second stack (constraints-mmpose13.txt): MMPose 1.3.2, full mmcv 2.1.0
# built from source (35 min set-up here on 2 busy cores; pip caches the wheel), torch
# 2.1.2, numpy 1.26, in its own venv.
VENV13 := .venv-mmpose13
PY13 := $(VENV13)/bin/python
STAMP13 := $(VENV13)/.installed
PIP13 := $(PY13) -m pip install -q --disable-pip-version-check -c constraints-mmpose13.txt

install-mmpose13: $(STAMP13)

$(STAMP13): constraints-mmpose13.txt pyproject.toml
	test -x $(PY13) || $(PYTHON) -m venv $(VENV13)
	$(PIP13) setuptools wheel ninja Cython numpy
	$(PIP13) torch torchvision
	@# mmcv's setup.py imports torch to compile its ops: no build isolation.
	MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) $(PIP13) --no-build-isolation mmcv
	$(PIP13) --no-build-isolation chumpy xtcocotools
	$(PIP13) mmengine mmdet mmpose
	$(PIP13) --no-build-isolation -e '.[tests,deploy]'
	$(PIP13) --no-deps facenet-pytorch
	$(PY13) -c 'import mmaniso, mmpose, mmcv.ops, mmdet; print("mmaniso", mmaniso.__version__, "on mmpose", mmpose.__version__, "mmcv", mmcv.__version__)'
	touch $(STAMP13)

# Both parts of the suite on the second stack, as `make test` and
# `make test-e2e` run them on the first.
test-mmpose13: $(STAMP13)
	$(PY13) -m pytest -q -n 2 -m 'not slow and not ddp'
	$(PY13) -m pytest -q -m 'slow or ddp'

# The suite in two parts: `make test` (what a contributor runs after a
# change; two pytest workers) and `make test-e2e` (end-to-end subprocess
# trainings, the gloo run, the GPU check's CPU dry run: markers slow and
# ddp). CI runs both (.ci/run).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m 'not slow and not ddp'

test-e2e: $(STAMP)
	$(PY) -m pytest -q -m 'slow or ddp'

test-all: test test-e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check mmaniso tools tests configs

# The documentation site: docs/*.md and the API reference from the
# docstrings, warnings as errors; open docs/_build/html/index.html.
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# The short demo (a few minutes on two cores) and the study's budget.
demo: $(STAMP)
	$(PY) tools/demo.py

demo-full: $(STAMP)
	$(PY) tools/demo.py --full

clean:
	rm -rf $(VENV) $(VENV13) work_dirs
