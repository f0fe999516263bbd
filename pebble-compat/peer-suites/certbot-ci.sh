#!/usr/bin/env bash
# Run certbot's own integration suite (certbot-ci, the certbot_tests module)
# offline against a pebble-compatible subject:
#
#   CERTBOT_SRC=/path/to/certbot-checkout certbot-ci.sh pebble|acme-ca [pytest args...]
#
#   pebble   the `pebble` / `pebble-challtestsrv` in $PEBBLE_DIR (default /usr/bin)
#   acme-ca  this repository's pebble-compat/bin wrappers, which exec $ACME_CA_BIN
#
# Environment:
#   CERTBOT_SRC         extracted certbot source tree (required)
#   CERTBOT_CI_VENV     venv to (re)use; default /work/peer/venv-certbot-ci
#   CERTBOT_CI_WORK     scratch dir for PATH shims, logs, junit xml;
#                       default <repo>/target/peer-suites/certbot-ci-<subject>
#   CERTBOT_CI_WORKERS  pytest-xdist workers; default 2
#   ACME_CA_BIN         acme-ca executable (subject acme-ca; see bin/pebble)
#
# Needs root (unshare -n): the suite binds fixed ports (14000, 15000, 5002,
# 8053, 8055, ...), so each run gets a private network namespace with only lo.
# certbot-ci would fetch pebble from GitHub; certbot_ci_offline.py (next to
# this script, loaded as a pytest plugin) makes it take them from PATH.
# Last line printed: "certbot-ci <subject>: N passed, N failed, N skipped";
# exit status 0 only if something passed and nothing failed.
set -euo pipefail

subject=${1:?usage: CERTBOT_SRC=... $0 pebble|acme-ca [pytest args...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
src=$(cd "${CERTBOT_SRC:?set CERTBOT_SRC to an extracted certbot source tree}" && pwd)
venv=${CERTBOT_CI_VENV:-/work/peer/venv-certbot-ci}
work=${CERTBOT_CI_WORK:-$repo/target/peer-suites/certbot-ci-$subject}
workers=${CERTBOT_CI_WORKERS:-2}

# 1. venv with acme, certbot and certbot-ci installed editable from $src.
#    A stamp records which source tree it was built from; rebuilt if that changes.
if [ "$(cat "$venv/.certbot-src" 2>/dev/null)" != "$src" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -e "$src/acme" -e "$src/certbot" -e "$src/certbot-ci"
    echo "$src" > "$venv/.certbot-src"
fi

# 2. A directory to put first on PATH holding the subject's two programs.
rm -rf "$work/path" "$work/logs" "$work/junit.xml" "$work/pytest.log"
mkdir -p "$work/path" "$work/logs"
case $subject in
    pebble)
        for p in pebble pebble-challtestsrv; do
            ln -s "${PEBBLE_DIR:-/usr/bin}/$p" "$work/path/$p"
        done ;;
    acme-ca)
        for p in pebble pebble-challtestsrv; do
            ln -s "$repo/pebble-compat/bin/$p" "$work/path/$p"
        done ;;
    *) echo "unknown subject: $subject (want pebble or acme-ca)" >&2; exit 2 ;;
esac

# 3. Run the suite inside a fresh network namespace. pytest runs from the
#    certbot tree root so its pytest.ini (warnings are errors) applies.
export PATH="$work/path:$venv/bin:$PATH"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export CERTBOT_CI_LOG_DIR="$work/logs"
set +e
unshare -n bash -c '
    ip link set lo up
    cd "$1" && shift
    exec python -m pytest -p certbot_ci_offline "$@"
' _ "$src" "$src/certbot-ci/src/certbot_integration_tests/certbot_tests" \
    -n "$workers" -rfEs --junitxml="$work/junit.xml" "$@" 2>&1 | tee "$work/pytest.log"
set -e

# 4. Summarise from the junit report (absent if the run died before tests).
python3 - "$subject" "$work/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
subject, path = sys.argv[1:]
passed = failed = skipped = 0
try:
    for case in ET.parse(path).iter('testcase'):
        kinds = {child.tag for child in case}
        if kinds & {'failure', 'error'}:
            failed += 1
            print(f"FAILED: {case.get('classname', '')}::{case.get('name', '')}")
        elif 'skipped' in kinds:
            skipped += 1
        else:
            passed += 1
except (OSError, ET.ParseError) as e:
    print(f'no junit report: {e}', file=sys.stderr)
print(f'certbot-ci {subject}: {passed} passed, {failed} failed, {skipped} skipped')
sys.exit(1 if failed or not passed else 0)
PY
