#!/usr/bin/env bash
# TLS scan of moat with testssl.sh (Debian package `testssl.sh`): protocols,
# cipher categories, forward secrecy, server defaults, known
# vulnerabilities and HTTP security headers, against moat on its built-in
# default policy (no config file) on 127.0.0.1, serving a certificate from a
# CA made here (so chain-of-trust findings mean something: testssl gets the
# CA with --add-ca).
#
# Fails on any finding rated MEDIUM, HIGH or CRITICAL, any "NOT ok" or
# "VULNERABLE", SSLv2/SSLv3/TLS 1.0/TLS 1.1 offered, a NULL/export/RC4/3DES/
# anonymous/CBC-only-weak cipher category offered, or HSTS missing.
#
# Usage: bash tests/security/tls-scan.sh            (uses target/release/moat)
#        MOAT_BIN=path/to/moat bash tests/security/tls-scan.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${MOAT_BIN:-target/release/moat}
[ -x "$BIN" ] || { echo "tls-scan: $BIN not built (cargo build --release)" >&2; exit 1; }
command -v testssl >/dev/null || command -v testssl.sh >/dev/null || {
  echo "tls-scan: testssl.sh is not installed (apt-get install testssl.sh)" >&2; exit 1; }
TESTSSL=$(command -v testssl || command -v testssl.sh)

W=$(mktemp -d)
MOAT_PID=
cleanup() { [ -n "$MOAT_PID" ] && kill "$MOAT_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# A CA and a localhost certificate signed by it (ECDSA P-256), made here, never committed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj "/CN=moat scan CA" \
  -keyout "$W/ca.key" -out "$W/ca.crt" -addext "basicConstraints=critical,CA:true" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$W/tls.key" -out "$W/tls.csr" >/dev/null 2>&1
# A CRL URI so that the revocation check is about moat, not about a bare test certificate.
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\ncrlDistributionPoints=URI:http://127.0.0.1/ca.crl\n' > "$W/ext"
openssl x509 -req -in "$W/tls.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial -days 365 \
  -extfile "$W/ext" -out "$W/tls.crt" >/dev/null 2>&1

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADMIN=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOAT_LISTEN__HTTPS=127.0.0.1:$PORT MOAT_LISTEN__ADMIN=127.0.0.1:$ADMIN \
  MOAT_TLS__CERT=$W/tls.crt MOAT_TLS__KEY=$W/tls.key MOAT_LOG=warn \
  "$BIN" run >"$W/moat.log" 2>&1 &
MOAT_PID=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done

echo "tls-scan: testssl.sh against moat on 127.0.0.1:$PORT (built-in defaults)"
set +e
timeout 600 "$TESTSSL" --quiet --color 0 --warnings off --sneaky --add-ca "$W/ca.crt" \
  -p -s -f -S -U -h --jsonfile "$W/scan.json" "https://localhost:$PORT/" >"$W/scan.txt" 2>&1
rc=$?
set -e
cat "$W/scan.txt"
[ -s "$W/scan.json" ] || { echo "tls-scan: testssl produced no JSON (exit $rc)" >&2; exit 1; }

python3 - "$W/scan.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
bad = []
def f(id_):
    return [x for x in findings if x.get("id") == id_]
for x in findings:
    sev = x.get("severity", "")
    text = x.get("finding", "")
    if x.get("id") in ("scanProblem", "engine_problem"):
        continue
    if sev in ("MEDIUM", "HIGH", "CRITICAL") or "NOT ok" in text or "VULNERABLE" in text.upper().replace("NOT VULNERABLE", ""):
        bad.append(f'{x.get("id")}: {sev}: {text}')
for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    for x in f(proto):
        if "not offered" not in x.get("finding", ""):
            bad.append(f"{proto} offered: {x.get('finding')}")
for cat in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_OBSOLETED"):
    for x in f(cat):
        if "not offered" not in x.get("finding", ""):
            bad.append(f"{cat}: {x.get('finding')}")
for x in f("TLS1_2") + f("TLS1_3"):
    if "offered" not in x.get("finding", "") or "not offered" in x.get("finding", ""):
        bad.append(f"{x.get('id')} not offered: {x.get('finding')}")
hsts = [x for x in findings if x.get("id", "").startswith("HSTS")]
if not hsts or any("not offered" in x.get("finding", "") or x.get("severity") not in ("OK", "INFO") for x in hsts):
    bad.append(f"HSTS: {[x.get('finding') for x in hsts] or 'missing'}")
if bad:
    print("tls-scan: FAILED")
    for b in bad:
        print("  " + b)
    sys.exit(1)
print(f"tls-scan: passed ({len(findings)} findings checked; no weak protocol, cipher or vulnerability; HSTS present)")
PY
