#!/usr/bin/env bash
# Run acme.sh's own test suite (acmetest's letest.sh) against a Pebble-like
# server, offline, the way acme.sh's PebbleStrict workflow does it.
#
#   ACMETEST_SRC=/path/acmetest ACMESH_SRC=/path/acme.sh \
#     acmetest.sh strict|ipcert pebble|acme-ca
#
# Jobs (acme.sh .github/workflows/PebbleStrict.yml):
#   strict  "PebbleStrict": pebble -strict resolving names through
#           pebble-challtestsrv (Pebble's docker-compose), example.com and
#           www.example.com validated over http-01 against acme.sh's
#           standalone listener on port 5002.
#   ipcert  "PebbleStrict_IPCert": pebble -strict with
#           PEBBLE_VA_ALWAYS_VALID=1, TestingDomain=1.23.45.67, TEST_IPCERT=1.
# Subjects: `pebble` = Debian's /usr/bin/pebble*, `acme-ca` =
# pebble-compat/bin/* running $ACME_CA_BIN (default /work/peer/bin/acme-ca).
# Only the two binaries differ between subjects.
#
# Everything runs in a private network + mount namespace (fixed ports, and a
# private crontab spool since the suite installs cron jobs). Each letest.sh
# case is run on its own (`letest.sh <case>`), so one failure does not stop
# the rest (the CI sets CI=true, which stops at the first failure).
# acmetest tests acme.sh's newest dev code: pair an acmetest revision with an
# acme.sh of the same date, or cases for client features the acme.sh copy
# lacks fail identically for both subjects. Offline, `acme.sh install` prints
# two curl "error code: 6" lines (its GitHub upgrade-hash lookup); harmless.
# Optional env: ACMETEST_WORK (work dir), ACMETEST_CASES (space separated
# subset), LE_CMD_TIMEOUT (per acme.sh command, default 300 s here).
# Last line printed: acmetest-<job> <subject>: N passed, N failed, N skipped
set -u

here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != "--inside" ]; then
  job=${1:?usage: acmetest.sh strict|ipcert pebble|acme-ca}
  subject=${2:?usage: acmetest.sh strict|ipcert pebble|acme-ca}
  case "$job" in strict|ipcert) ;; *) echo "unknown job $job" >&2; exit 2;; esac
  case "$subject" in pebble|acme-ca) ;; *) echo "unknown subject $subject" >&2; exit 2;; esac
  : "${ACMETEST_SRC:?set ACMETEST_SRC}" "${ACMESH_SRC:?set ACMESH_SRC}"
  work=${ACMETEST_WORK:-/tmp/acmetest-$job-$subject}
  rm -rf "$work"; mkdir -p "$work/bin" "$work/logs" "$work/home" \
    "$work/test/certs/localhost" "$work/test/config"

  # The CI copies acme.sh into the acmetest checkout (TEST_LOCAL=1 keeps it).
  # (Contents copied, so that a source path that is a symlink is followed.)
  mkdir -p "$work/acmetest"
  cp -r "$ACMETEST_SRC/." "$work/acmetest/"
  rm -rf "$work/acmetest/acme.sh"
  mkdir -p "$work/acmetest/acme.sh"
  cp -r "$ACMESH_SRC/." "$work/acmetest/acme.sh/"

  # Pebble's test config and a listener cert for localhost, at the relative
  # paths the config names (the servers run with $work as cwd).
  cp "$here/acmetest/pebble-config.json" "$work/test/config/pebble-config.json"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/test/certs/localhost/key.pem" \
    -out "$work/test/certs/localhost/cert.pem" >/dev/null 2>&1 || exit 1

  # The only difference between subjects: what `pebble*` on PATH is.
  if [ "$subject" = pebble ]; then
    ln -s /usr/bin/pebble "$work/bin/pebble"
    ln -s /usr/bin/pebble-challtestsrv "$work/bin/pebble-challtestsrv"
  else
    export ACME_CA_BIN=${ACME_CA_BIN:-/work/peer/bin/acme-ca}
    [ -x "$ACME_CA_BIN" ] || { echo "no acme-ca at $ACME_CA_BIN" >&2; exit 1; }
    ln -s "$here/../bin/pebble" "$work/bin/pebble"
    ln -s "$here/../bin/pebble-challtestsrv" "$work/bin/pebble-challtestsrv"
  fi
  exec unshare -n -m bash "$0" --inside "$job" "$subject" "$work"
fi

# ---- inside the namespaces ----
job=$2 subject=$3 work=$4
ip link set lo up
# Private crontab spool: the suite installs/removes root's cron entries.
mount -t tmpfs -o mode=1730,gid=crontab tmpfs /var/spool/cron/crontabs
export PATH="$work/bin:$PATH" HOME="$work/home"
cd "$work" || exit 1
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT

# Env of the workflow job (only the CI=true fail-fast switch is left out).
export TEST_ACME_Server=https://localhost:14000/dir HTTPS_INSECURE=1 \
  Le_HTTPPort=5002 TEST_LOCAL=1 TEST_CA="Pebble Intermediate CA"
export LE_CMD_TIMEOUT=${LE_CMD_TIMEOUT:-300}

if [ "$job" = strict ]; then
  export TestingDomain=example.com TestingAltDomains=www.example.com
  # docker-compose: challtestsrv answers DNS for pebble. In CI it sits in its
  # own container, so its own challenge listeners never meet acme.sh's
  # standalone server; here they would take port 5002/5001, so turn them off.
  pebble-challtestsrv -defaultIPv6 "" -defaultIPv4 127.0.0.3 \
    -http01 "" -https01 "" -tlsalpn01 "" >logs/challtestsrv.log 2>&1 &
  pids+=($!)
  pebble -config test/config/pebble-config.json -strict \
    -dnsserver 127.0.0.1:8053 >logs/pebble.log 2>&1 &
  pids+=($!)
else
  export TestingDomain=1.23.45.67 Le_TLSPort=5001 TEST_IPCERT=1
  PEBBLE_VA_ALWAYS_VALID=1 pebble -config test/config/pebble-config.json \
    -strict >logs/pebble.log 2>&1 &
  pids+=($!)
fi

for _ in $(seq 100); do
  curl -sk -o /dev/null https://localhost:14000/dir && break; sleep 0.3
done
if [ "$job" = strict ]; then
  # "Set up Pebble" step: every name resolves to where acme.sh listens
  # (the docker host in CI, loopback here).
  for _ in $(seq 50); do
    curl -s -o /dev/null http://localhost:8055/ && break; sleep 0.3
  done
  curl -s --request POST --data '{"ip":"127.0.0.1"}' \
    http://localhost:8055/set-default-ipv4 >>logs/challtestsrv.log 2>&1
fi

cd acmetest || exit 1
cases=${ACMETEST_CASES:-$(grep '^le_test_' letest.sh | cut -d '(' -f 1)}
for t in $cases; do
  rm -f cmd.log
  timeout 3600 ./letest.sh "$t" >"../logs/$t.out" 2>&1
  rc=$?
  # letest.sh leaves the acme.sh debug log in <case>.log and the output of
  # the last acme.sh command in cmd.log; keep both.
  [ -f "$t.log" ] && cp "$t.log" "../logs/$t.log"
  [ -f cmd.log ] && cp cmd.log "../logs/$t.cmd.log"
  if [ "$rc" != 0 ]; then
    r=FAIL
  elif grep -q '^Skipped' "../logs/$t.out"; then
    r=SKIP   # the case returned early on a "Skipped ..." condition
  else
    r=PASS
  fi
  echo "$r $t"
done | tee ../logs/results.txt
pass=$(grep -c '^PASS' ../logs/results.txt)
fail=$(grep -c '^FAIL' ../logs/results.txt)
skip=$(grep -c '^SKIP' ../logs/results.txt)
echo "logs: $work/logs"
sed -n 's/^FAIL /FAILED: /p' ../logs/results.txt
echo "acmetest-$job $subject: $pass passed, $fail failed, $skip skipped"
