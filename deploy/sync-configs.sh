#!/usr/bin/env bash
# Keeps the copies of moat's configs and alert rules that live inside the
# kustomization tree identical to their sources, so that every base, overlay
# and component builds with plain `kubectl kustomize` / `kustomize build`
# (kustomize refuses files outside the kustomization root). Run from anywhere:
#
#   bash deploy/sync-configs.sh           # rewrite the copies
#   bash deploy/sync-configs.sh --check   # exit 1 and name every stale copy (CI)
#
# Sources and copies:
#   config/moat.toml           -> deploy/kubernetes/base/moat.toml
#   config/mineru-api.toml     -> deploy/kubernetes/overlays/mineru-api/moat.toml
#   config/paperless-gpt.toml  -> deploy/kubernetes/overlays/paperless-gpt/moat.toml
#   deploy/monitoring/alerts.yaml -> deploy/kubernetes/components/monitoring/prometheusrule.yaml
#                                    (the same groups as a PrometheusRule's spec)
# A config copy is its source byte for byte, except its Taplo `#:schema`
# first line: `./moat.schema.json` becomes the path from the copy's folder
# to config/moat.schema.json, so that editors find the schema there too.
# Edit the sources, never the copies.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

COPIES=(
  "config/moat.toml:deploy/kubernetes/base/moat.toml"
  "config/mineru-api.toml:deploy/kubernetes/overlays/mineru-api/moat.toml"
  "config/paperless-gpt.toml:deploy/kubernetes/overlays/paperless-gpt/moat.toml"
)
ALERTS=deploy/monitoring/alerts.yaml
RULE=deploy/kubernetes/components/monitoring/prometheusrule.yaml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The PrometheusRule: a fixed header, then alerts.yaml's groups indented
# under spec (its leading comment block is left out).
render_rule() {
  cat <<'YAML'
# Generated from deploy/monitoring/alerts.yaml by deploy/sync-configs.sh:
# edit that file and rerun the script, never this one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: moat
  labels:
    # The default ruleSelector of kube-prometheus-stack is its release label;
    # set it to your release name (or change the selector) if it differs.
    release: kube-prometheus-stack
spec:
YAML
  awk 'started || !/^(#|$)/ { started = 1; print (length($0) ? "  " $0 : "") }' "$ALERTS"
}

stale=0
sync_one() {
  local src=$1 dst=$2
  if [[ ! -f $src ]]; then
    echo "missing source: $src" >&2
    stale=1
    return
  fi
  if ((check)); then
    if ! cmp -s "$src" "$dst"; then
      echo "stale: $dst differs from its source (run: bash deploy/sync-configs.sh)"
      stale=1
    fi
  elif ! cmp -s "$src" "$dst"; then
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
    echo "updated $dst"
  fi
}

# A config as copied to $2: the schema path made relative to the copy's folder.
render_config() {
  local src=$1 dst=$2 up
  up=$(dirname "$dst" | sed 's#[^/][^/]*#..#g')
  sed "1s|^#:schema \./|#:schema $up/config/|" "$src"
}

n=0
for pair in "${COPIES[@]}"; do
  src=${pair%%:*} dst=${pair#*:}
  if [[ -f $src ]]; then
    n=$((n + 1))
    render_config "$src" "$dst" >"$tmp/config-$n.toml"
    src=$tmp/config-$n.toml
  fi
  sync_one "$src" "$dst"
done
if [[ -f $ALERTS ]]; then
  render_rule >"$tmp/rule.yaml"
  sync_one "$tmp/rule.yaml" "$RULE"
else
  echo "missing source: $ALERTS" >&2
  stale=1
fi
exit "$stale"
