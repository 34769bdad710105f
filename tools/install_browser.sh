#!/usr/bin/env bash
# Install what the report's browser test needs: Debian's headless Chromium and its
# chromedriver (apt), and selenium (pip, into the given Python environment).
#
# Usage: tools/install_browser.sh [PYTHON]      (default: .venv/bin/python)
#
# Why Debian's packages: Chromium and chromedriver come in matching versions from the same
# archive, and nothing downloads a browser at test time (Selenium Manager and Playwright fetch
# their own from the network, which a CI runner or an offline machine may not reach). The test
# (tests/test_detect_report_browser.py) points selenium at /usr/bin/chromium and
# /usr/bin/chromedriver, and skips with a message naming this script when they are missing.
#
# Idempotent: each part is skipped when already present, so a second run takes a second.
# apt-get needs root (or sudo); without either, the browser part stops with a one-line note.
set -euo pipefail

PY=${1:-.venv/bin/python}

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "install_browser: chromium and chromedriver present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
else
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install_browser: need root (or sudo) for apt-get install chromium chromium-driver" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_browser: no apt-get here; install Chromium and its chromedriver as" \
             "/usr/bin/chromium and /usr/bin/chromedriver by this system's means" >&2
        exit 1
    fi
    echo "install_browser: apt-get install chromium chromium-driver"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
    /usr/bin/chromium --version
fi

if "$PY" -c "import selenium" 2>/dev/null; then
    echo "install_browser: selenium present ($("$PY" -c 'import selenium; print(selenium.__version__)'))"
else
    "$PY" -m pip install --quiet "selenium>=4.20"
fi
