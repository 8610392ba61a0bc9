#!/usr/bin/env bash
# Installs everything the tests need from the project's own files, then runs the whole suite.
# This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --disable-pip-version-check -r requirements.txt -r tests/requirements.txt
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
python -m pytest -q tests "$@"
