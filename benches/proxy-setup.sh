# Sourced by benches/callgrind-process.sh, perf-profile.sh and syscalls.sh: the
# shared setup of a proxy measured on 127.0.0.1. A work directory ($W) with a
# throwaway certificate, an nginx upstream answering 1 KiB on 127.0.0.1:9000,
# `common` (the nginx directives every nginx config here shares) and
# `moat_env` (moat's listeners, certificate and the policies of
# benches/compare.sh: a rate limit that never rejects, a CORS allowlist, a
# body limit; access log off unless MOAT_LOG says otherwise). Needs root (for
# nginx's `user root`), nginx and openssl; port 9000 must be free. Also the
# load's defaults (MODES, H1_SECONDS) and MOAT_BIN, built when not given;
# `hardened_conf` writes the nginx-hardened config they compare moat with.
# The tools the sourcing script names in NEEDS, with nginx and openssl, are
# checked before anything starts.
for c in nginx openssl ${NEEDS:-}; do
  command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done
H1_SECONDS=${H1_SECONDS:-10}
MODES=${MODES:-"h2 h1"}
if [ -z "${MOAT_BIN:-}" ]; then
  cargo build --release --locked --bin moat >&2
  MOAT_BIN=$(pwd)/target/release/moat
fi
ORIGIN=${ORIGIN:-https://app.example.com}
W=$(mktemp -d /tmp/moat-bench.XXXXXX)
mkdir -p "$W"/{logs,tmp,errors,out}
cleanup() {
  [ -f "$W/upstream.pid" ] && kill "$(cat "$W/upstream.pid")" 2>/dev/null || true
  pkill -9 -f "$W/" 2>/dev/null || true
  rm -f /tmp/vgdb-pipe-*-"${VG_PID:-none}"-* 2>/dev/null || true
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$W/key.pem" \
  -out "$W/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
BODY=$(head -c 1024 /dev/zero | tr '\0' x)
common() {
  cat <<CONF
  access_log off; server_tokens off; tcp_nodelay on; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $W/tmp/b; proxy_temp_path $W/tmp/p; fastcgi_temp_path $W/tmp/f;
  uwsgi_temp_path $W/tmp/u; scgi_temp_path $W/tmp/s;
CONF
}
cat > "$W/upstream.conf" <<CONF
user root root; worker_processes 1; pid $W/upstream.pid; error_log $W/logs/upstream.err warn;
events { worker_connections 8192; }
http {
$(common)
  server { listen 127.0.0.1:9000 default_server; location / { default_type text/plain; return 200 "$BODY"; } }
}
CONF
nginx -c "$W/upstream.conf"

moat_env() {
  export MOAT_LISTEN__HTTPS=127.0.0.1:8446 MOAT_LISTEN__ADMIN=127.0.0.1:9911 MOAT_UPSTREAM__URL=http://127.0.0.1:9000 \
    MOAT_TLS__CERT="$W/cert.pem" MOAT_TLS__KEY="$W/key.pem" MOAT_TLS__MIN_VERSION=1.3 MOAT_LOG="${MOAT_LOG:-warn}" \
    MOAT_RATE_LIMIT__DEFAULT='{ rate = "1000000/s", burst = 1000000 }' \
    MOAT_CORS__ALLOWED_ORIGINS="[\"$ORIGIN\"]" MOAT_LIMITS__MAX_BODY=200MiB
}

# hardened_conf PROCESS_DIRECTIVES: writes $W/hardened.conf, nginx-hardened
# with the directives of the shared anchors script (limit_req, content-type
# allowlist, CORS map, intercepted errors) on 127.0.0.1:8443, e.g.
#   hardened_conf "worker_processes 1; master_process off; daemon off;"
hardened_conf() {
  echo '<html><body>error</body></html>' > "$W/errors/__error.html"
  cat > "$W/hardened.conf" <<EOF
user root root; $1 pid $W/hardened.pid;
error_log $W/logs/hardened.err warn;
events { worker_connections 8192; }
http {
$(common)
  ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; ssl_protocols TLSv1.3;
  upstream app { server 127.0.0.1:9000; keepalive 512; keepalive_requests 1000000; keepalive_timeout 75s; }
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=1000000r/s;
  limit_req_status 429;
  map \$http_origin \$cors_allow_origin { default ""; "$ORIGIN" \$http_origin; "https://admin.example.com" \$http_origin; }
  map \$content_type \$ct_ok { default 0; "" 1; ~*^application/octet-stream 1; ~*^application/json 1;
    ~*^multipart/form-data 1; ~*^image/(png|jpeg|webp) 1; }
  server {
    listen 127.0.0.1:8443 ssl http2; server_name localhost;
    client_max_body_size 100m; proxy_request_buffering off;
    limit_req zone=perip burst=1000000 nodelay;
    if (\$ct_ok = 0) { return 415; }
    proxy_intercept_errors on;
    error_page 400 403 404 405 413 415 429 500 502 503 504 /__error.html;
    location = /__error.html { internal; root $W/errors; }
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_hide_header X-Powered-By; proxy_hide_header Server;
      add_header Access-Control-Allow-Origin \$cors_allow_origin always; add_header Vary Origin always;
    }
  }
}
EOF
}
