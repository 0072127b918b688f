# Everything installs from python3 and the package registries into .venv.
# Re-running a target does not reinstall: .venv/.installed is the stamp.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PIPQ := $(PIP) install -q --disable-pip-version-check -c constraints.txt

.PHONY: install test test-fast lint demo clean

install: $(STAMP)

$(STAMP): constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Build tools first: xtcocotools and chumpy are built from source
	# against this numpy (the xtcocotools wheel targets numpy 1.x) and
	# chumpy's setup imports pkg_resources (setuptools<81).
	$(PIPQ) setuptools wheel Cython numpy
	$(PIPQ) torch torchvision
	$(PIPQ) --no-build-isolation --no-binary xtcocotools xtcocotools chumpy
	$(PIPQ) --no-build-isolation -e '.[tests,lite,deploy]'
	# MTCNN's weight files, for tools/infer.py's default face detector: the
	# package is never imported (it pins torch<2.3 and numpy<2), so it comes
	# without its dependencies.
	$(PIPQ) --no-deps facenet-pytorch
	$(PY) -c 'import mmaniso, mmpose, xtcocotools.coco; print("mmaniso", mmaniso.__version__, "on mmpose", mmpose.__version__)'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow and not ddp'

lint: $(STAMP)
	$(VENV)/bin/ruff check mmaniso tools tests configs

demo: $(STAMP)
	$(PY) tools/demo.py

clean:
	rm -rf $(VENV) work_dirs
