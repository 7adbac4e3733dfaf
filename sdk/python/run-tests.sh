#!/usr/bin/env bash
# The Python SDK's checks: a venv in sdk/python/.venv (system Python untouched), the package and
# its test extras installed editable, ruff and mypy --strict, then pytest. Ends with one line:
#   python-sdk: N passed, M failed[, K skipped]
# and exits nonzero when anything failed. A lint failure counts as one failed check.
# The end-to-end test reads SENTINELD_BIN and SENTINELCTL_BIN; with CI set it fails without them.
set -uo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv || exit 1
fi
.venv/bin/python -m pip install --quiet -e '.[test]' || exit 1

lint_failed=0
.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy --strict src || lint_failed=1

report=.venv/pytest-report.xml
rm -f "$report"
.venv/bin/python -m pytest -rs -p no:cacheprovider --junitxml="$report" "$@"
pytest_status=$?

if [ ! -f "$report" ]; then
    echo "python-sdk: 0 passed, $((1 + lint_failed)) failed"
    exit 1
fi
read -r passed failed skipped < <(.venv/bin/python - "$report" <<'EOF'
import sys
import xml.etree.ElementTree as tree

suites = list(tree.parse(sys.argv[1]).getroot().iter("testsuite"))
tests, failures, errors, skipped = (
    sum(int(suite.get(key, 0)) for suite in suites)
    for key in ("tests", "failures", "errors", "skipped")
)
print(tests - failures - errors - skipped, failures + errors, skipped)
EOF
)
failed=$((failed + lint_failed))
echo "python-sdk: $passed passed, $failed failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")"
# pytest's 5 (no test ran) is a failure too.
[ "$pytest_status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
