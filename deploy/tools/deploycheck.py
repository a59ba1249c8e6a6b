#!/usr/bin/env python3
"""Invariant checks for moat's deployment files (used by deploy/validate.sh).

Subcommands:
  configs                       list the moat config files the deploy files mount
  compose CONFIG.json LABEL     check a `docker-compose config --format json` result
  k8s RENDERED.yaml LABEL       check a rendered kustomize overlay
  moat-check MOAT_BIN           run `moat check` on every config collected above
  monitoring RENDERED.yaml LABEL --alerts ALERTS.yaml
                                check the PodMonitor and PrometheusRule of an overlay
                                rendered with components/monitoring
  alerts-for-test ALERTS.yaml OUT.yaml
                                write the rules without their runbook annotations
                                (promtool test rules compares every annotation)

`compose` and `k8s` append what they find mounted into moat (config file and
MOAT_* environment) to the jobs file given by --jobs; `moat-check` runs them.
Every problem is printed on its own line; the exit status is 1 if any.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

MOAT_CONFIG_TARGET = "/etc/moat/moat.toml"
HTTPS_PORT = 8443
ADMIN_PORT = 9901
# Networks with outside connectivity. "edge" carries moat's published port and
# only moat joins it; "egress" lets an app reach outside APIs (LLM providers)
# and publishes nothing. Every other network must be internal.
EDGE_NETWORK = "edge"
EGRESS_NETWORK = "egress"
# The Compose monitoring profile: Prometheus and Grafana publish their UIs on
# the host's loopback through "ops" (not internal); only services of that
# profile may join it or publish a port, and only on loopback.
OPS_NETWORK = "ops"
MONITORING_PROFILE = "monitoring"
LOOPBACK = ("127.0.0.1", "::1")
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Problems:
    def __init__(self, label):
        self.label = label
        self.items = []

    def add(self, msg):
        self.items.append(f"{self.label}: {msg}")

    def report(self):
        for item in self.items:
            print(item)
        return 1 if self.items else 0


def append_job(jobs_path, job):
    if jobs_path:
        with open(jobs_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(job) + "\n")


# ---------------------------------------------------------------- configs


def cmd_configs(args):
    """Print every config file (repo-relative) that a deploy file mounts."""
    found = set()
    for path in sorted(glob.glob("deploy/compose/*.yml")):
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        moat = (doc.get("services") or {}).get("moat") or {}
        for vol in moat.get("volumes") or []:
            if isinstance(vol, dict) and vol.get("target") == MOAT_CONFIG_TARGET:
                found.add(os.path.normpath(os.path.join(os.path.dirname(path), vol["source"])))
    for path in sorted(glob.glob("deploy/kubernetes/**/kustomization.yaml", recursive=True)):
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        for gen in doc.get("configMapGenerator") or []:
            for entry in gen.get("files") or []:
                key, _, src = entry.partition("=")
                if key == "moat.toml" and src:
                    found.add(os.path.normpath(os.path.join(os.path.dirname(path), src)))
    for p in sorted(found):
        print(p)
    return 0


# ---------------------------------------------------------------- compose


def cmd_compose(args):
    pr = Problems(args.label)
    with open(args.config, encoding="utf-8") as f:
        doc = json.load(f)
    services = doc.get("services") or {}
    networks = doc.get("networks") or {}

    if "moat" not in services:
        pr.add("no service named moat")
        return pr.report()

    if args.source and args.env_example:
        # Every variable the compose file interpolates is documented in its
        # .env.example, and the example sets nothing the file does not use.
        with open(args.source, encoding="utf-8") as f:
            used = set(re.findall(r"\$\{([A-Za-z0-9_]+)", f.read()))
        with open(args.env_example, encoding="utf-8") as f:
            listed = set(re.findall(r"^([A-Za-z0-9_]+)=", f.read(), re.M))
        for var in sorted(used - listed):
            pr.add(f"{var} is used but not listed in {args.env_example}")
        for var in sorted(listed - used):
            pr.add(f"{var} is listed in {args.env_example} but not used")

    for name, net in networks.items():
        internal = bool((net or {}).get("internal"))
        if name in (EDGE_NETWORK, EGRESS_NETWORK, OPS_NETWORK):
            if internal:
                pr.add(f"network {name} must not be internal")
        elif not internal:
            pr.add(f"network {name} must be internal: true")

    for name, svc in services.items():
        nets = set((svc.get("networks") or {}).keys())
        monitoring = MONITORING_PROFILE in (svc.get("profiles") or [])
        if not nets:
            pr.add(f"{name}: joins no explicit network (would use the default one)")
        if name != "moat":
            for port in svc.get("ports") or []:
                host_ip = port.get("host_ip") or "0.0.0.0"
                if not monitoring:
                    pr.add(f"{name}: publishes ports; only moat (and the {MONITORING_PROFILE} profile, on loopback) may")
                    break
                if host_ip not in LOOPBACK:
                    pr.add(f"{name}: publishes port {port.get('target')} on {host_ip}; loopback only")
            if EDGE_NETWORK in nets:
                pr.add(f"{name}: joins {EDGE_NETWORK}; only moat may")
        if OPS_NETWORK in nets and not monitoring:
            pr.add(f"{name}: joins {OPS_NETWORK}; only services of the {MONITORING_PROFILE} profile may")
        if svc.get("network_mode") in ("host",) or svc.get("pid") == "host" or svc.get("ipc") == "host":
            pr.add(f"{name}: shares a host namespace")
        if svc.get("privileged"):
            pr.add(f"{name}: privileged")
        bad_caps = {"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "NET_RAW"} & set(svc.get("cap_add") or [])
        if bad_caps:
            pr.add(f"{name}: adds capabilities {sorted(bad_caps)}")
        if "no-new-privileges:true" not in (svc.get("security_opt") or []):
            pr.add(f"{name}: security_opt lacks no-new-privileges:true")
        if not svc.get("image"):
            pr.add(f"{name}: no image name")

    moat = services["moat"]
    for port in moat.get("ports") or []:
        target = int(port.get("target"))
        host_ip = port.get("host_ip") or "0.0.0.0"
        if target == ADMIN_PORT:
            if host_ip not in ("127.0.0.1", "::1"):
                pr.add(f"moat: admin port {ADMIN_PORT} published on {host_ip}; loopback only")
        elif target != HTTPS_PORT:
            pr.add(f"moat: publishes container port {target}; only {HTTPS_PORT} (and admin on loopback)")
    if not moat.get("read_only"):
        pr.add("moat: read_only is not true")
    user = str(moat.get("user") or "")
    uid = user.split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        pr.add(f"moat: user {user!r} is not a numeric non-root UID")
    if "ALL" not in (moat.get("cap_drop") or []):
        pr.add("moat: cap_drop lacks ALL")
    if moat.get("cap_add"):
        pr.add("moat: adds capabilities")
    test = (moat.get("healthcheck") or {}).get("test") or []
    if "health" not in test:
        pr.add("moat: healthcheck does not run `moat health`")
    env = {k: v for k, v in (moat.get("environment") or {}).items() if k.startswith("MOAT_") and v is not None}
    if not str(env.get("MOAT_LISTEN__ADMIN", "")).startswith("0.0.0.0:"):
        pr.add("moat: MOAT_LISTEN__ADMIN must bind 0.0.0.0 inside the container")

    command = moat.get("command") or []
    config_target = None
    if "--config" in command:
        i = command.index("--config")
        if i + 1 < len(command):
            config_target = command[i + 1]
    if not config_target:
        pr.add("moat: command has no --config FILE")
    config_source = None
    tls_mounted = False
    for vol in moat.get("volumes") or []:
        if not vol.get("read_only"):
            pr.add(f"moat: volume {vol.get('target')} is not read-only")
        if vol.get("target") == config_target:
            config_source = vol.get("source")
        if vol.get("target") == "/etc/moat/tls" and vol.get("type") == "bind":
            tls_mounted = True
    if config_target and not config_source:
        pr.add(f"moat: --config {config_target} is not a mounted file")
    if not tls_mounted:
        pr.add("moat: /etc/moat/tls is not bind-mounted")
    if config_source:
        append_job(args.jobs, {"label": args.label, "config": config_source, "env": env})
    return pr.report()


# ---------------------------------------------------------------- kubernetes


def pod_spec_of(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec") or {}
    if kind in WORKLOAD_KINDS:
        return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        return (((doc["spec"].get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def pod_labels_of(doc):
    if doc.get("kind") == "Pod":
        return (doc.get("metadata") or {}).get("labels") or {}
    return (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def selects(match_labels, labels):
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def check_container(pr, where, c, pod_sc):
    sc = c.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True:
        pr.add(f"{where}: securityContext.runAsNonRoot is not true")
    if sc.get("readOnlyRootFilesystem") is not True:
        pr.add(f"{where}: securityContext.readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        pr.add(f"{where}: securityContext.allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        pr.add(f"{where}: privileged")
    if "ALL" not in (((sc.get("capabilities") or {}).get("drop")) or []):
        pr.add(f"{where}: capabilities.drop lacks ALL")
    if (sc.get("capabilities") or {}).get("add"):
        pr.add(f"{where}: adds capabilities")
    if ((sc.get("seccompProfile") or {}).get("type")) != "RuntimeDefault":
        pr.add(f"{where}: seccompProfile is not RuntimeDefault")
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if uid is None or int(uid) == 0:
        pr.add(f"{where}: no non-root runAsUser")
    res = c.get("resources") or {}
    for section in ("requests", "limits"):
        for key in ("cpu", "memory"):
            if not (res.get(section) or {}).get(key):
                pr.add(f"{where}: resources.{section}.{key} missing")


def probe_path_port(probe):
    get = (probe or {}).get("httpGet") or {}
    return get.get("path"), get.get("port")


def cmd_k8s(args):
    pr = Problems(args.label)
    with open(args.rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    configmaps = {(d["metadata"]["name"]): d for d in by_kind.get("ConfigMap", [])}

    workloads = [d for d in docs if pod_spec_of(d) is not None]
    if not workloads:
        pr.add("no workload rendered")
    moat_pods = []
    for w in workloads:
        wname = f"{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec_of(w)
        pod_sc = spec.get("securityContext") or {}
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            pr.add(f"{wname}: shares a host namespace")
        if spec.get("automountServiceAccountToken") is not False:
            pr.add(f"{wname}: automountServiceAccountToken is not false")
        containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
        for c in containers:
            check_container(pr, f"{wname}/{c.get('name')}", c, pod_sc)
        moats = [c for c in spec.get("containers") or [] if c.get("name") == "moat"]
        if not moats:
            continue
        moat_pods.append(w)
        moat = moats[0]
        where = f"{wname}/moat"
        ports = {p.get("name"): p.get("containerPort") for p in moat.get("ports") or []}
        if ports.get("https") != HTTPS_PORT or ports.get("admin") != ADMIN_PORT:
            pr.add(f"{where}: ports must be https={HTTPS_PORT} and admin={ADMIN_PORT}, got {ports}")
        if probe_path_port(moat.get("livenessProbe")) not in (("/healthz", "admin"), ("/healthz", ADMIN_PORT)):
            pr.add(f"{where}: livenessProbe must GET /healthz on the admin port")
        if probe_path_port(moat.get("readinessProbe")) not in (("/readyz", "admin"), ("/readyz", ADMIN_PORT)):
            pr.add(f"{where}: readinessProbe must GET /readyz on the admin port")
        env = {e["name"]: e.get("value") for e in moat.get("env") or [] if "value" in e}
        upstream = str(env.get("MOAT_UPSTREAM__URL", ""))
        if not re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])[:/]", upstream):
            pr.add(f"{where}: MOAT_UPSTREAM__URL {upstream!r} is not the pod's loopback")
        for c in spec.get("containers") or []:
            if c.get("name") != "moat" and c.get("ports"):
                pr.add(f"{wname}/{c.get('name')}: declares ports; the app must listen on 127.0.0.1 only")
        # config and TLS volumes
        args_ = moat.get("args") or []
        config_path = args_[args_.index("--config") + 1] if "--config" in args_ else None
        if not config_path:
            pr.add(f"{where}: args have no --config FILE")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        config_text = None
        tls_ok = False
        for m in moat.get("volumeMounts") or []:
            vol = volumes.get(m["name"]) or {}
            if not m.get("readOnly"):
                pr.add(f"{where}: mount {m['mountPath']} is not readOnly")
            if "secret" in vol and m["mountPath"] == "/etc/moat/tls":
                tls_ok = "subPath" not in m
                if not tls_ok:
                    pr.add(f"{where}: TLS Secret mounted with subPath (updates would not reach moat)")
            if "configMap" in vol and config_path and config_path.startswith(m["mountPath"].rstrip("/") + "/"):
                key = config_path[len(m["mountPath"].rstrip("/")) + 1:]
                cm = configmaps.get(vol["configMap"]["name"])
                if cm is None:
                    pr.add(f"{where}: ConfigMap {vol['configMap']['name']} is not in the rendered output")
                elif key not in (cm.get("data") or {}):
                    pr.add(f"{where}: ConfigMap {cm['metadata']['name']} has no key {key}")
                else:
                    config_text = cm["data"][key]
        if "moat-tls" not in [v.get("secret", {}).get("secretName") for v in volumes.values()] or not tls_ok:
            pr.add(f"{where}: Secret moat-tls is not mounted at /etc/moat/tls")
        if config_text is None:
            pr.add(f"{where}: --config {config_path} is not a mounted ConfigMap key")
        else:
            append_job(args.jobs, {"label": args.label, "config_text": config_text,
                                   "env": {k: v for k, v in env.items() if k.startswith("MOAT_")}})

    for w in moat_pods:
        labels = pod_labels_of(w)
        wname = f"{w['kind']}/{w['metadata']['name']}"
        services = [s for s in by_kind.get("Service", []) if selects((s.get("spec") or {}).get("selector"), labels)]
        if not services:
            pr.add(f"{wname}: no Service selects it")
        for s in services:
            for p in s["spec"].get("ports") or []:
                if p.get("targetPort") not in ("https", HTTPS_PORT):
                    pr.add(f"Service/{s['metadata']['name']}: targets {p.get('targetPort')}; only moat's https port")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
                if selects(((p.get("spec") or {}).get("selector") or {}).get("matchLabels"), labels)]
        if not pdbs:
            pr.add(f"{wname}: no PodDisruptionBudget selects it")
        nps = [n for n in by_kind.get("NetworkPolicy", [])
               if selects(((n.get("spec") or {}).get("podSelector") or {}).get("matchLabels"), labels)]
        if not nps:
            pr.add(f"{wname}: no NetworkPolicy selects it")
        for n in nps:
            check_network_policy(pr, n)
    return pr.report()


def check_network_policy(pr, n):
    where = f"NetworkPolicy/{n['metadata']['name']}"
    spec = n.get("spec") or {}
    if "Ingress" not in (spec.get("policyTypes") or []):
        pr.add(f"{where}: policyTypes lacks Ingress")
    allowed = {HTTPS_PORT: INGRESS_NAMESPACE, ADMIN_PORT: MONITORING_NAMESPACE}
    seen = set()
    for rule in spec.get("ingress") or []:
        ports = [p.get("port") for p in rule.get("ports") or []]
        sources = rule.get("from") or []
        if not ports:
            pr.add(f"{where}: a rule admits every port")
            continue
        if not sources:
            pr.add(f"{where}: a rule admits every source")
            continue
        for port in ports:
            if port not in allowed:
                pr.add(f"{where}: admits port {port}")
                continue
            seen.add(port)
            for src in sources:
                ns = ((src.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                if ns != allowed[port] or "ipBlock" in src:
                    pr.add(f"{where}: port {port} admits {src}; only namespace {allowed[port]}")
    for port in allowed:
        if port not in seen:
            pr.add(f"{where}: no rule for port {port}")


# ---------------------------------------------------------------- monitoring


def cmd_monitoring(args):
    """The overlay rendered with components/monitoring: a PodMonitor that
    selects the moat pods and scrapes their admin port, and a PrometheusRule
    holding exactly the groups of deploy/monitoring/alerts.yaml."""
    pr = Problems(args.label)
    with open(args.rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(args.alerts, encoding="utf-8") as f:
        alerts = yaml.safe_load(f)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    moat_pods = [w for w in docs if pod_spec_of(w) is not None
                 and any(c.get("name") == "moat" for c in pod_spec_of(w).get("containers") or [])]
    monitors = by_kind.get("PodMonitor", [])
    if not monitors:
        pr.add("no PodMonitor rendered")
    for m in monitors:
        where = f"PodMonitor/{m['metadata']['name']}"
        spec = m.get("spec") or {}
        match = (spec.get("selector") or {}).get("matchLabels") or {}
        selected = [w for w in moat_pods if w["metadata"].get("namespace") == m["metadata"].get("namespace")
                    and selects(match, pod_labels_of(w))]
        if not selected:
            pr.add(f"{where}: selects no moat pod in its namespace")
        for w in selected:
            moat = next(c for c in pod_spec_of(w)["containers"] if c.get("name") == "moat")
            ports = {p.get("name"): p.get("containerPort") for p in moat.get("ports") or []}
            for ep in spec.get("podMetricsEndpoints") or []:
                if ports.get(ep.get("port")) != ADMIN_PORT or ep.get("path", "/metrics") != "/metrics":
                    pr.add(f"{where}: endpoint {ep} is not moat's admin /metrics")
        if not spec.get("podMetricsEndpoints"):
            pr.add(f"{where}: no podMetricsEndpoints")
    rules = by_kind.get("PrometheusRule", [])
    if len(rules) != 1:
        pr.add(f"expected one PrometheusRule, got {len(rules)}")
    for r in rules:
        if (r.get("spec") or {}).get("groups") != alerts.get("groups"):
            pr.add(f"PrometheusRule/{r['metadata']['name']}: groups differ from {args.alerts} "
                   "(run: bash deploy/sync-configs.sh)")
    return pr.report()


def cmd_alerts_for_test(args):
    with open(args.alerts, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            (rule.get("annotations") or {}).pop("runbook", None)
    with open(args.out, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return 0


# ---------------------------------------------------------------- moat check


def cmd_moat_check(args):
    jobs = []
    with open(args.jobs, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                jobs.append(json.loads(line))
    failed = 0
    moat = os.path.abspath(args.moat)
    with tempfile.TemporaryDirectory(prefix="moat-check-") as tmp:
        # moat check reads the TLS files, which only exist in the container:
        # point the TLS overrides at a throwaway pair.
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=moat-check", "-keyout", key, "-out", cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for n, job in enumerate(jobs):
            if "config_text" in job:
                config = os.path.join(tmp, f"rendered-{n}", "moat.toml")
                os.makedirs(os.path.dirname(config))
                with open(config, "w", encoding="utf-8") as f:
                    f.write(job["config_text"])
                shown = "rendered ConfigMap moat.toml"
            else:
                config = job["config"]
                shown = os.path.relpath(config)
                if not os.path.isfile(config):
                    failed = 1
                    print(f"FAIL  moat check {job['label']}: {shown} is missing")
                    continue
            env = {k: v for k, v in os.environ.items() if not k.startswith("MOAT_")}
            env.update({k: str(v) for k, v in job["env"].items()})
            if "MOAT_TLS__CERT" in env:
                env["MOAT_TLS__CERT"] = cert
            if "MOAT_TLS__KEY" in env:
                env["MOAT_TLS__KEY"] = key
            if "MOAT_TLS__CLIENT_CA" in env:
                env["MOAT_TLS__CLIENT_CA"] = cert
            overrides = " ".join(sorted(job["env"]))
            proc = subprocess.run([moat, "check", "--config", config], env=env, cwd=tmp,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode == 0:
                print(f"ok    moat check {job['label']}: {shown} with {overrides or 'no overrides'}")
            else:
                failed = 1
                print(f"FAIL  moat check {job['label']}: {shown} with {overrides or 'no overrides'}")
                for line in proc.stdout.splitlines():
                    print(f"      {line}")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("configs")
    c = sub.add_parser("compose")
    c.add_argument("config")
    c.add_argument("label")
    c.add_argument("--jobs")
    c.add_argument("--source", help="the compose file itself")
    c.add_argument("--env-example", help="its .env.example")
    k = sub.add_parser("k8s")
    k.add_argument("rendered")
    k.add_argument("label")
    k.add_argument("--jobs")
    m = sub.add_parser("moat-check")
    m.add_argument("moat")
    m.add_argument("--jobs", required=True)
    mo = sub.add_parser("monitoring")
    mo.add_argument("rendered")
    mo.add_argument("label")
    mo.add_argument("--alerts", required=True)
    at = sub.add_parser("alerts-for-test")
    at.add_argument("alerts")
    at.add_argument("out")
    args = ap.parse_args()
    return {"configs": cmd_configs, "compose": cmd_compose, "k8s": cmd_k8s,
            "moat-check": cmd_moat_check, "monitoring": cmd_monitoring,
            "alerts-for-test": cmd_alerts_for_test}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
