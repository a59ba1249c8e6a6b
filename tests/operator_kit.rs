//! The operator's kit: the config file's JSON Schema (committed, current,
//! and accepted by every shipped config), shell completions and the man
//! page, and the monitoring queries (Grafana dashboard, alert rules)
//! checked against the metrics a live moat exports.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use promql_parser::parser::{self, Expr, LabelModifier};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(repo("config/moat.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

/// Every moat config in the repository: the presets and reference under
/// config/, and their copies in the kustomize tree (deploy/ holds no other TOML).
fn shipped_configs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    toml_files(&repo("config"), &mut files);
    toml_files(&repo("deploy"), &mut files);
    assert!(files.len() >= 6, "expected the 3 configs and their 3 kustomize copies: {files:?}");
    files
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    serde_json::to_value(table).unwrap()
}

/// The schema's complaints about a TOML text, as `path: message` lines.
fn schema_errors(validator: &jsonschema::Validator, toml_text: &str) -> Vec<String> {
    let value = as_json(toml_text);
    validator.iter_errors(&value).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

#[test]
fn committed_schema_is_what_moat_schema_prints() {
    let (code, out, err) = moat_cmd(&["schema"], &[]);
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(repo("config/moat.schema.json")).unwrap();
    assert!(
        out == committed,
        "config/moat.schema.json is stale: regenerate it with `cargo run --release -- schema > config/moat.schema.json`"
    );
    let schema = committed_schema();
    assert!(jsonschema::meta::is_valid(&schema), "the schema is not a valid JSON Schema");
}

#[test]
fn every_shipped_config_follows_the_schema_and_points_at_it() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    let schema_file = repo("config/moat.schema.json").canonicalize().unwrap();
    for path in shipped_configs() {
        let text = std::fs::read_to_string(&path).unwrap();
        let errors = schema_errors(&validator, &text);
        assert!(errors.is_empty(), "{} does not follow the schema:\n{}", path.display(), errors.join("\n"));
        // The Taplo directive on the first line names the schema by a path
        // relative to the file, and that path reaches the committed schema.
        let first = text.lines().next().unwrap_or_default();
        let rel = first.strip_prefix("#:schema ").unwrap_or_else(|| {
            panic!("{}: the first line must be `#:schema <path to moat.schema.json>`, not {first:?}", path.display())
        });
        let target = path.parent().unwrap().join(rel.trim());
        assert_eq!(
            target.canonicalize().ok().as_ref(),
            Some(&schema_file),
            "{}: #:schema {rel} does not lead to config/moat.schema.json",
            path.display()
        );
    }
}

#[test]
fn the_schema_refuses_wrong_types_unknown_keys_and_bad_units() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    let ok = "deny_unmatched = true\n[limits]\nidle_timeout = 30\nmax_body = \"10MiB\"\nbody_read_timeout = \"500ms\"\n\
              [upstream]\nurl_file = \"/run/secrets/url\"\n[rate_limit]\ndefault = \"off\"\n\
              [[routes]]\nname = \"api\"\npath = \"/api\"\nrate_limit = { key = \"ip\", rate = \"20/s\", burst = 40 }\n";
    let errors = schema_errors(&validator, ok);
    assert!(errors.is_empty(), "{errors:?}");
    for (bad, path) in [
        ("deny_unmatched = \"yes\"\n", "/deny_unmatched"),
        ("[listen]\nhttps = 8443\n", "/listen/https"),
        ("[limits]\nmax_connections = \"many\"\n", "/limits/max_connections"),
        ("[limits]\nidle_timeout = \"soonish\"\n", "/limits/idle_timeout"),
        ("[limits]\nmax_body = \"10 furlongs\"\n", "/limits/max_body"),
        ("[limits]\nidle_timeout = -1\n", "/limits/idle_timeout"),
        ("[upstream]\nurll = \"http://app:8000\"\n", "/upstream"),
        ("[tls]\nmin_version = \"1.1\"\n", "/tls/min_version"),
        ("[[routes]]\nname = \"a\"\nrate_limit = \"sometimes\"\n", "/routes/0/rate_limit"),
        ("[[routes]]\nname = \"a\"\nrate_limit = { rate = \"10/fortnight\" }\n", "/routes/0/rate_limit"),
        ("routes = { name = \"a\" }\n", "/routes"),
        ("[sacn]\nenabled = true\n", ""),
    ] {
        let errors = schema_errors(&validator, bad);
        assert!(!errors.is_empty(), "the schema accepts {bad:?}");
        assert!(errors.iter().any(|e| e.starts_with(&format!("{path}:"))), "{bad:?}: {errors:?}");
        // moat refuses each of them too: the schema flags nothing that moat would accept.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("moat.toml");
        std::fs::write(&file, bad).unwrap();
        let (code, _, _) = moat_cmd(&["check", "--config", file.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "moat check accepts {bad:?} although the schema refuses it");
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = moat_cmd(&["completions", shell], &[]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("moat"), "{shell}: {out}");
        for sub in ["run", "check", "schema", "completions"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("moat.bash");
            std::fs::write(&file, &out).unwrap();
            let st = std::process::Command::new("bash").arg("-n").arg(&file).status().unwrap();
            assert!(st.success(), "bash -n refuses the bash completion");
        }
    }
    let (code, _, _) = moat_cmd(&["completions", "tcsh"], &[]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
    let (code, out, err) = moat_cmd(&["man"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(".ie") || out.contains(".TH moat"), "{out}");
    assert!(out.contains("moat") && out.contains("hash\\-password"), "{out}");
    // With --out-dir: the page and the per-subcommand pages it refers to.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = moat_cmd(&["man", "--out-dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    for page in ["moat.1", "moat-run.1", "moat-check.1", "moat-schema.1", "moat-completions.1", "moat-man.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} missing or empty");
    }
}

// ---------------------------------------------------------------- monitoring

/// Labels Prometheus attaches to every scraped series (Compose job and
/// Kubernetes PodMonitor target labels); moat's exposition cannot show them.
const TARGET_LABELS: &[&str] = &["job", "instance", "namespace", "pod", "container", "service", "endpoint"];

/// Series name → label names, from the text exposition.
fn exposition_labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            // name="value",... with backslash escapes inside the quoted values.
            let mut rest = &line[end + 1..];
            while let Some(eq) = rest.find("=\"") {
                labels.insert(rest[..eq].trim_start_matches(',').trim().to_string());
                let value = &rest[eq + 2..];
                let mut close = None;
                let mut escaped = false;
                for (i, c) in value.char_indices() {
                    match (c, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => {
                            close = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let Some(close) = close else { break };
                rest = &value[close + 1..];
                if rest.starts_with('}') {
                    break;
                }
            }
        }
    }
    out
}

/// A selected series: its metric name and the label names its matchers use.
#[derive(Debug)]
struct Selected {
    name: String,
    labels: Vec<String>,
}

/// Walks a PromQL expression: every vector selector, and for every
/// aggregation or vector match the labels it groups by, with the selectors
/// under it.
fn walk(e: &Expr, sel: &mut Vec<Selected>, groupings: &mut Vec<(Vec<String>, Vec<String>)>) {
    let selector = |vs: &promql_parser::parser::VectorSelector, sel: &mut Vec<Selected>| {
        let mut labels: Vec<String> = vs.matchers.matchers.iter().map(|m| m.name.clone()).collect();
        labels.extend(vs.matchers.or_matchers.iter().flatten().map(|m| m.name.clone()));
        let name = vs
            .name
            .clone()
            .or_else(|| vs.matchers.matchers.iter().find(|m| m.name == "__name__").map(|m| m.value.clone()));
        labels.retain(|l| l != "__name__");
        sel.push(Selected { name: name.unwrap_or_default(), labels });
    };
    let names = |m: &LabelModifier| m.labels().labels.clone();
    match e {
        Expr::VectorSelector(vs) => selector(vs, sel),
        Expr::MatrixSelector(ms) => selector(&ms.vs, sel),
        Expr::Aggregate(a) => {
            let start = sel.len();
            walk(&a.expr, sel, groupings);
            if let Some(p) = &a.param {
                walk(p, sel, groupings);
            }
            if let Some(m) = &a.modifier {
                groupings.push((names(m), sel[start..].iter().map(|s| s.name.clone()).collect()));
            }
        }
        Expr::Binary(b) => {
            let start = sel.len();
            walk(&b.lhs, sel, groupings);
            walk(&b.rhs, sel, groupings);
            if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                groupings.push((names(m), sel[start..].iter().map(|s| s.name.clone()).collect()));
            }
        }
        Expr::Unary(u) => walk(&u.expr, sel, groupings),
        Expr::Paren(p) => walk(&p.expr, sel, groupings),
        Expr::Subquery(s) => walk(&s.expr, sel, groupings),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, sel, groupings)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Grafana's variables replaced by values PromQL accepts.
fn grafana_to_promql(q: &str) -> String {
    q.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$instance", ".*").replace("$route", ".*")
}

/// Every query of the dashboard: panel `expr`s, and the selectors and label
/// of its `label_values(...)` variables (as `selector` + the label to read).
fn dashboard_queries() -> Vec<(String, Option<String>)> {
    fn visit(v: &serde_json::Value, out: &mut Vec<(String, Option<String>)>) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(s)) => out.push((grafana_to_promql(s), None)),
                        ("query", serde_json::Value::String(s)) if s.starts_with("label_values(") => {
                            let inner = s.trim_start_matches("label_values(").trim_end_matches(')');
                            let (selector, label) = inner.rsplit_once(',').unwrap_or((inner, ""));
                            out.push((grafana_to_promql(selector.trim()), Some(label.trim().to_string())));
                        }
                        _ => visit(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| visit(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo("deploy/monitoring/grafana-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    visit(&json, &mut out);
    assert!(out.len() > 10, "the dashboard's queries were not found: {out:?}");
    out
}

/// Every `expr:` of the alert rules: a one-line value or a `|` / `>` block.
fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/monitoring/alerts.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        i += 1;
        let Some(value) = trimmed.strip_prefix("expr:").map(str::trim) else { continue };
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let mut block = Vec::new();
            while i < lines.len() {
                let l = lines[i];
                let lt = l.trim_start();
                if !lt.is_empty() && l.len() - lt.len() <= indent {
                    break;
                }
                block.push(lt);
                i += 1;
            }
            out.push(block.join("\n"));
        } else {
            out.push(value.trim_matches(|c| c == '"' || c == '\'').to_string());
        }
    }
    assert!(out.len() > 10, "the alert rules' expressions were not found");
    out
}

#[tokio::test]
async fn dashboard_and_alert_queries_select_what_moat_exports() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "deny_unmatched = true\n[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[upstream]\nurl = \"{}\"\n{}\
         [auth]\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nrate_limit = {{ rate = \"1/min\", burst = 1 }}\n\
         [[routes]]\nname = \"private\"\npath = \"/private\"\nauth = \"api_key\"\n",
        up.url(),
        pki.tls_toml(),
        sha256_hex(b"good-key")
    ));
    let c = pki.client();
    assert_eq!(c.get(m.url("/api/a")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(m.url("/api/a")).send().await.unwrap().status(), 429);
    assert_eq!(c.get(m.url("/elsewhere")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(m.url("/private")).header("x-api-key", "bad").send().await.unwrap().status(), 401);

    let scrape = scrape(&m).await;
    let exported = exposition_labels(&scrape);
    assert!(scrape.contains("moat_upstream_ready{upstream=\"default\"} 1"), "{scrape}");

    let mut queries: Vec<(String, String, Option<String>)> =
        dashboard_queries().into_iter().map(|(q, l)| ("grafana-dashboard.json".to_string(), q, l)).collect();
    queries.extend(alert_exprs().into_iter().map(|q| ("alerts.yaml".to_string(), q, None)));
    let mut problems = Vec::new();
    for (file, query, extra_label) in &queries {
        problems.extend(
            query_problems(query, extra_label.as_deref(), &exported).into_iter().map(|p| format!("{file}: {p}")),
        );
    }
    // The check itself catches a wrong name, a wrong matcher label and a wrong grouping label.
    for wrong in [
        "sum(rate(moat_request_total[5m]))",
        "moat_requests_total{path=\"/x\"}",
        "sum by (reason) (moat_requests_total)",
    ] {
        assert_eq!(query_problems(wrong, None, &exported).len(), 1, "{wrong} passes the check");
    }
    assert!(problems.is_empty(), "{}\n\nscrape:\n{scrape}", problems.join("\n"));
}

/// What is wrong with one query against the exported series: names moat
/// does not export, matchers and groupings on labels the series lack.
fn query_problems(
    query: &str,
    extra_label: Option<&str>,
    exported: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let expr = match parser::parse(query) {
        Ok(e) => e,
        Err(e) => return vec![format!("{query}: does not parse: {e}")],
    };
    let (mut selected, mut groupings) = (Vec::new(), Vec::new());
    walk(&expr, &mut selected, &mut groupings);
    if let (Some(label), Some(first)) = (extra_label, selected.first()) {
        groupings.push((vec![label.to_string()], vec![first.name.clone()]));
    }
    let carries = |name: &str, label: &str| {
        TARGET_LABELS.contains(&label) || exported.get(name).is_some_and(|l| l.contains(label))
    };
    // Prometheus' own per-target series.
    let excused = |name: &str| name == "up";
    for s in selected.iter().filter(|s| !excused(&s.name)) {
        if !exported.contains_key(&s.name) {
            problems.push(format!("{query}: moat exports no series named {}", s.name));
            continue;
        }
        for l in s.labels.iter().filter(|l| !carries(&s.name, l)) {
            problems.push(format!("{query}: {} has no label {l}", s.name));
        }
    }
    for (labels, names) in &groupings {
        let names: Vec<&String> = names.iter().filter(|n| !excused(n)).collect();
        if names.is_empty() {
            continue;
        }
        for l in labels.iter().filter(|l| !names.iter().any(|n| carries(n, l))) {
            problems.push(format!("{query}: groups by {l}, which none of {names:?} carries"));
        }
    }
    problems
}
