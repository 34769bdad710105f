#!/usr/bin/env bash
# Install the MMDetection stack (mmcv 2.1.0 with compiled ops, mmdet 3.3.0,
# onedl-mmengine) into a Python environment, building mmcv once per machine.
#
# Usage: tools/install_mmdet.sh [PYTHON]      (default: .venv/bin/python)
#
# Why a script and not a pip requirement:
# - mmdet 3.3.0 needs mmcv's compiled ops (mmcv._ext) and asserts mmcv < 2.2.0; mmcv 2.1.0
#   exists on the registry only as a source archive, and its setup.py hard-codes
#   -std=c++14/17 while torch >= 2.13 headers need C++20. We patch the flag and build a
#   wheel (about 25 min on 2 idle cores, 52 min measured on 2 busy ones), cached under
#   ${VISIONATTN_CACHE:-$HOME/.cache/visionattn}/wheels/<key>/, where <key> names the mmcv,
#   torch and Python versions and CPU/CUDA ops. A new torch gives a new key: a rebuild.
# - mmengine 0.10.x calls torch.load without weights_only, so resuming from a checkpoint
#   fails on torch 2.14. onedl-mmengine is a maintained drop-in providing the same
#   `mmengine` module. mmcv declares a dependency on `mmengine`, so mmcv is installed with
#   --no-deps and its runtime dependencies explicitly; exactly one distribution may
#   provide the `mmengine` module (checked at the end).
#
# Environment:
#   MAX_JOBS=N        parallel compile jobs (default 2)
#   FORCE_CUDA=1      build the CUDA ops too (as mmcv documents; needs nvcc / CUDA_HOME).
#                     They are also built when torch sees a GPU. TORCH_CUDA_ARCH_LIST
#                     selects the GPU architectures. CUDA builds get their own cache key.
#   VISIONATTN_CACHE  cache root (default ~/.cache/visionattn)
#
# A second run, with everything installed, returns in seconds (stamp in the environment).
set -euo pipefail

PY=${1:-.venv/bin/python}
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMENGINE_DIST="onedl-mmengine==0.10.12"
# mmcv 2.1.0's runtime dependencies (its requirements/runtime.txt minus mmengine): mmcv itself
# is installed with --no-deps. mmdet and onedl-mmengine bring their own dependencies (pycocotools,
# shapely, terminaltables, scipy, rich, termcolor, ...): neither depends on mmcv or mmengine
# (mmdet lists them only in its 'mim' extra), so pip cannot pull the original mmengine.
MMCV_RUNTIME_DEPS=(addict numpy packaging Pillow pyyaml yapf)

log() { echo "[install_mmdet] $*" >&2; }
die() { echo "[install_mmdet] ERROR: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python interpreter at '$PY'"
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

# --- 1. cache key -------------------------------------------------------------------------
# One interpreter start (importing torch takes seconds): prints the key and the stamp path.
read -r key stamp < <("$PY" - "$MMCV_VERSION" <<'EOF'
import os, sys, torch
if os.environ.get("FORCE_CUDA", "0") == "1" or torch.cuda.is_available():
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "").replace(" ", "").replace(";", "_")
    ops = f"cu{torch.version.cuda}" + (f"-arch{arch}" if arch else "")
else:
    ops = "cpu"
key = f"mmcv{sys.argv[1]}-torch{torch.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}-{ops}"
print(key.replace("+", "_"), os.path.join(sys.prefix, ".visionattn-mmdet-stamp"))
EOF
) || true
[ -n "${key:-}" ] || die "cannot compute the cache key: does '$PY' import torch? (install torch first)"
cache_root=${VISIONATTN_CACHE:-$HOME/.cache/visionattn}/wheels
cache_dir=$cache_root/$key
stamp_text="$key mmdet${MMDET_VERSION} ${MMENGINE_DIST}"

# Does the environment hold exactly the stack the stamp describes?
installed_ok() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ] || return 1
    "$PY" - "$MMCV_VERSION" "$MMDET_VERSION" <<'EOF'
import sys
from importlib import metadata
want_mmcv, want_mmdet = sys.argv[1:]
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
ok = (version("mmcv") == want_mmcv and version("mmdet") == want_mmdet
      and version("onedl-mmengine") is not None and version("mmengine") is None)
sys.exit(0 if ok else 1)
EOF
}

if installed_ok; then
    log "up to date ($key)"
    exit 0
fi
log "cache key: $key"

# --- 2. build the mmcv wheel once per key --------------------------------------------------
find_wheel() { compgen -G "$cache_dir/mmcv-${MMCV_VERSION}-*.whl" | head -n 1 || true; }

mkdir -p "$cache_root"
exec 9>"$cache_root/.$key.lock"
flock 9 || die "cannot lock $cache_root/.$key.lock"   # one build per key at a time

wheel=$(find_wheel)
if [ -z "$wheel" ]; then
    log "no cached wheel in $cache_dir: building mmcv $MMCV_VERSION from source"
    log "(25-50 min on 2 cores with MAX_JOBS=${MAX_JOBS:-2})"
    pip install --quiet "setuptools>=77,<81" wheel ninja psutil
    tmp=$(mktemp -d "$cache_root/.build-$key.XXXXXX")   # same filesystem: mv is atomic
    trap 'rm -rf "$tmp"' EXIT
    pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION" -d "$tmp/src"
    tar -xzf "$tmp/src/mmcv-$MMCV_VERSION.tar.gz" -C "$tmp/src"
    src=$tmp/src/mmcv-$MMCV_VERSION
    # torch >= 2.13 headers need C++20; mmcv's setup.py asks for c++14 or c++17.
    grep -q -- '-std=c++1[47]' "$src/setup.py" \
        || die "mmcv setup.py: no '-std=c++14/17' flag found to patch; has the source changed?"
    sed -i 's/-std=c++1[47]/-std=c++20/g' "$src/setup.py"
    if grep -q -- '-std=c++1[47]' "$src/setup.py"; then
        die "mmcv setup.py: '-std=c++14/17' still present after patching"
    fi
    start=$(date +%s)
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
        pip wheel --no-deps --no-build-isolation -w "$tmp/wheel" "$src"
    built=$(compgen -G "$tmp/wheel/mmcv-${MMCV_VERSION}-*.whl" | head -n 1) \
        || die "mmcv build produced no wheel"
    mkdir -p "$cache_dir"
    mv "$built" "$cache_dir/"
    log "built $(basename "$built") in $(( $(date +%s) - start )) s"
    rm -rf "$tmp"
    trap - EXIT
    wheel=$(find_wheel)
else
    log "using cached $wheel"
fi

# --- 3. install the stack ------------------------------------------------------------------
# Distributions that would provide a second `mmengine` or `mmcv` module.
for dist in mmengine mmcv-lite mmcv-full; do
    if "$PY" -c "from importlib import metadata; metadata.version('$dist')" 2>/dev/null; then
        log "removing $dist (it provides the same module as the stack installed here)"
        pip uninstall --quiet --yes "$dist"
    fi
done
# mmcv last and without its dependencies: pip's resolver would otherwise report mmcv's
# `mmengine` requirement as unmet (onedl-mmengine provides the module under another name).
pip install --quiet "${MMCV_RUNTIME_DEPS[@]}" "$MMENGINE_DIST" "mmdet==$MMDET_VERSION"
pip install --quiet --no-deps --force-reinstall "$wheel"

"$PY" - <<'EOF' || die "the installed stack does not import (see above)"
from importlib import metadata
providers = {}
for module in ("mmengine", "mmcv"):
    names = sorted({d.metadata["Name"] for d in metadata.distributions()
                    if any(str(f).startswith(module + "/") for f in (d.files or []))})
    assert len(names) == 1, f"{len(names)} distributions provide '{module}': {names}"
    providers[module] = names[0]
import mmdet.models, mmcv.ops  # noqa: F401
from mmcv.ops import nms  # noqa: F401
import torch
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
print(f"mmdet stack OK ({', '.join(f'{m} from {d}' for m, d in providers.items())}): mmdet.models and mmcv.ops.nms work")
EOF
echo "$stamp_text" > "$stamp"
log "installed ($key)"
