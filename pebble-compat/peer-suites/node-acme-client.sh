#!/bin/bash
# Runs node-acme-client's own mocha suite (`npm test`) the way its GitHub CI
# job does (.github/workflows/tests.yml), against Pebble or acme-ca.
#
#   NODE_ACME_CLIENT_SRC=/path/to/source node-acme-client.sh eab|noeab pebble|acme-ca
#
# Environment:
#   NODE_ACME_CLIENT_SRC  extracted node-acme-client source (read only)
#   NAC_WORK              work dir: source copy + node_modules, certs, logs
#                         (default /tmp/node-acme-client-work); one run
#                         at a time per work dir
#   ACME_CA_BIN           acme-ca executable for subject acme-ca (read by
#                         ../bin/pebble*; default there: this repo's build)
#   PEBBLE_DIR            dir holding Debian's pebble binaries (default /usr/bin)
#   PEBBLE_VA_SLEEPTIME etc. pass through to the subject (CI sets none)
#
# Everything runs in fresh network + mount namespaces (needs root), so the
# fixed ports never clash and /etc can be overlaid with the files CI puts
# there: /etc/pebble/{pebble.json,ca.cert.pem,cert.pem,key.pem} and a
# resolv.conf naming 127.53.53.53 (CI's CoreDNS; here dns-relay.js).
# The last line printed is
#   node-acme-client-<eab|noeab> <subject>: N passed, N failed, N skipped
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${NAC_WORK:-/tmp/node-acme-client-work}

# ---- inside the namespaces (the script re-runs itself here) -------------
if [ "${1:-}" = --in-ns ]; then
    mode=$2 subject=$3 logs=$4
    mount --make-rprivate /
    ip link set lo up

    # Overlay /etc with a throwaway upper layer; write CI's files into it.
    ovl=$work/run/ovl
    mkdir -p "$ovl"
    mount -t tmpfs tmpfs "$ovl"
    mkdir -p "$ovl/upper" "$ovl/work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$ovl/upper,workdir=$ovl/work" /etc
    mkdir -p /etc/pebble
    cp "$work/certs/ca.pem" /etc/pebble/ca.cert.pem
    cp "$work/certs/localhost.pem" /etc/pebble/cert.pem
    cp "$work/certs/localhost.key" /etc/pebble/key.pem
    if [ "$mode" = eab ]; then
        cp "$here/node-acme-client.pebble-eab.json" /etc/pebble/pebble.json
    else
        cp "$here/node-acme-client.pebble.json" /etc/pebble/pebble.json
    fi
    echo "nameserver 127.53.53.53" > /etc/resolv.conf

    # The environment of CI's job.
    export PEBBLE_ALTERNATE_ROOTS=2 PEBBLECTS_DNS_PORT=8053
    export NODE_EXTRA_CA_CERTS=/etc/pebble/ca.cert.pem ACME_CA_CERT_PATH=/etc/pebble/ca.cert.pem
    export ACME_DIRECTORY_URL=https://127.0.0.1:14000/dir
    export ACME_CHALLTESTSRV_URL=http://127.0.0.1:8055
    export ACME_PEBBLE_MANAGEMENT_URL=https://127.0.0.1:15000
    export ACME_DOMAIN_NAME=test.example.com
    export ACME_CAP_EAB_ENABLED=$([ "$mode" = eab ] && echo 1 || echo 0)
    export ACME_TLSALPN_PORT=5001 ACME_HTTP_PORT=5002 ACME_HTTPS_PORT=5003

    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

    node "$here/dns-relay.js" 127.53.53.53 53 127.0.0.1 "$PEBBLECTS_DNS_PORT" \
        >"$logs/dns-relay.log" 2>&1 &
    pids+=($!)
    # CI's command lines, verbatim.
    pebble-challtestsrv -dns01 ":$PEBBLECTS_DNS_PORT" -tlsalpn01 ":$ACME_TLSALPN_PORT" \
        -http01 ":$ACME_HTTP_PORT" -https01 ":$ACME_HTTPS_PORT" \
        -defaultIPv4 127.0.0.1 -defaultIPv6 "" >"$logs/challtestsrv.log" 2>&1 &
    pids+=($!)
    pebble -strict -config /etc/pebble/pebble.json -dnsserver 127.53.53.53:53 \
        >"$logs/pebble.log" 2>&1 &
    pids+=($!)

    # Like CI's tests-wait-for-ca.sh.
    for _ in $(seq 30); do
        curl --cacert "$ACME_CA_CERT_PATH" -fs -o /dev/null "$ACME_DIRECTORY_URL" && break
        sleep 1
    done

    cd "$work/src"
    # `npm test` is this mocha command; spec reporter, no colours, to parse.
    ./node_modules/.bin/mocha --no-color -t 60000 "test/setup.js" "test/**/*.spec.js" \
        >"$logs/mocha.log" 2>&1 || true
    exit 0
fi

# ---- outside: arguments, idempotent setup, then the namespaced run -------
mode=${1:-} subject=${2:-}
case "$mode" in eab|noeab) ;; *) echo "usage: $0 eab|noeab pebble|acme-ca" >&2; exit 2 ;; esac
src=${NODE_ACME_CLIENT_SRC:?set NODE_ACME_CLIENT_SRC to the node-acme-client source}

mkdir -p "$work/src" "$work/certs" "$work/bin-pebble"
case "$subject" in
    pebble)
        for b in pebble pebble-challtestsrv; do
            ln -sfn "${PEBBLE_DIR:-/usr/bin}/$b" "$work/bin-pebble/$b"
        done
        bindir=$work/bin-pebble ;;
    acme-ca) bindir=$(cd "$here/../bin" && pwd) ;;
    *) echo "usage: $0 eab|noeab pebble|acme-ca" >&2; exit 2 ;;
esac

# A private copy of the source, refreshed each run; node_modules is kept
# and reinstalled only when package.json changes.
tar -C "$src" --exclude=./node_modules -cf - . | tar -C "$work/src" -xf -
stamp=$(sha256sum "$work/src/package.json" | cut -d' ' -f1)
if [ "$(cat "$work/src/node_modules/.nac-stamp" 2>/dev/null)" != "$stamp" ]; then
    (cd "$work/src" && npm install --no-audit --no-fund >&2)
    echo "$stamp" > "$work/src/node_modules/.nac-stamp"
fi

# The HTTPS listener's CA and localhost certificate (Pebble's test certs
# are downloaded by CI; these are made once with openssl instead).
c=$work/certs
if [ ! -s "$c/localhost.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nac test CA" \
        -keyout "$c/ca.key" -out "$c/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$c/localhost.key" -out "$c/localhost.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,DNS:pebble,IP:127.0.0.1\n' > "$c/ext.cnf"
    openssl x509 -req -in "$c/localhost.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" \
        -CAcreateserial -days 3650 -extfile "$c/ext.cnf" -out "$c/localhost.pem" 2>/dev/null
fi

logs=$work/logs/$mode-$subject
rm -rf "$logs"; mkdir -p "$logs"
PATH="$bindir:$PATH" NAC_WORK=$work unshare -n -m "$0" --in-ns "$mode" "$subject" "$logs"

# Mocha's spec summary: "N passing", "N failing", "N pending".
count() { grep -Eo "^ +[0-9]+ $1" "$logs/mocha.log" | tail -1 | grep -Eo '[0-9]+' || echo 0; }
echo "logs: $logs" >&2
# The failing tests' full titles, "FAILED: <suite> <test>", from the spec
# reporter's failure list (an entry runs until the line ending with ':').
python3 - "$logs/mocha.log" <<'PY'
import re, sys
try:
    text = open(sys.argv[1], errors="replace").read().split("\n")
except OSError:
    sys.exit(0)
on, i = False, 0
while i < len(text):
    line = text[i]
    if re.match(r"^ +\d+ failing", line):
        on = True
    elif on and re.match(r"^  \d+\) ", line):
        parts = [re.sub(r"^  \d+\) ", "", line).strip()]
        while not parts[-1].endswith(":") and i + 1 < len(text) and text[i + 1].strip():
            i += 1
            parts.append(text[i].strip())
        print("FAILED: " + " ".join(parts).rstrip(":"))
    i += 1
PY
echo "node-acme-client-$mode $subject: $(count passing) passed, $(count failing) failed, $(count pending) skipped"
