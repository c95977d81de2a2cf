#!/usr/bin/env bash
# Runs the integration tests (test/integration) with Debian's python3; extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider test/integration "$@"
