#!/usr/bin/env bash
# meson's entry to the deploy/ checks (tests/deploy/validate.py), run with
# Debian's python3 (python3-yaml), like the e2e tools. ZRING_PYTHON overrides.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${ZRING_PYTHON:-/usr/bin/python3}" "$here/validate.py" "$@"
