#!/usr/bin/env bash
# meson's entry to the deploy/ checks, run with Debian's python3
# (python3-yaml), like the e2e tools; ZRING_PYTHON overrides.
#   validate.sh [--only SECTION]...   tests/deploy/validate.py
#   validate.sh --mutate              tests/deploy/mutate.py (checks the checker)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ZRING_PYTHON="${ZRING_PYTHON:-/usr/bin/python3}"
if [ "${1:-}" = --mutate ]; then
  exec "$ZRING_PYTHON" "$here/mutate.py"
fi
exec "$ZRING_PYTHON" "$here/validate.py" "$@"
