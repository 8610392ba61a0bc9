#!/usr/bin/env bash
# Installs everything the tests need from the project's own files, then runs the whole suite.
# This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --disable-pip-version-check -r requirements.txt -r tests/requirements.txt
# lmms-eval for the benchmark harness's test (tests/test_lmms_eval.py); the app's install leaves it out.
python -m pip install -q --disable-pip-version-check -r tests/requirements-lmms.txt
# The browser test drives Debian's Chromium through Playwright (never `playwright install`: no downloads).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
python -m pytest -q tests "$@"
