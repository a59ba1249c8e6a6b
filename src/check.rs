//! `moat check`: the effective policy of every route, as a table.

use std::fmt::Write;

use crate::config::{Config, Route};

fn size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, m) in UNITS {
        if n >= m && n % m == 0 {
            return format!("{}{u}", n / m);
        }
    }
    format!("{n}B")
}

fn dur(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn row(r: &Route) -> Vec<String> {
    vec![
        r.name.clone(),
        r.path
            .as_ref()
            .map(|p| p.raw.clone() + if p.is_exact() { " (exact)" } else { "" })
            .unwrap_or_else(|| "*".into()),
        r.methods
            .as_ref()
            .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "any".into()),
        size(r.max_body),
        dur(r.response_timeout),
        r.content_types.as_ref().map(|c| c.join(",")).unwrap_or_else(|| "any".into()),
        r.upload
            .as_ref()
            .map(|u| {
                format!("{} (max {} files)", u.types.iter().map(|t| t.name).collect::<Vec<_>>().join(","), u.max_files)
            })
            .unwrap_or_else(|| "-".into()),
    ]
}

/// Renders the route table.
pub fn table(cfg: &Config) -> String {
    let header: Vec<String> = ["ROUTE", "PATH", "METHODS", "MAX BODY", "TIMEOUT", "CONTENT TYPES", "UPLOAD"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut rows = vec![header];
    for r in &cfg.routes {
        rows.push(row(r));
    }
    let mut d = row(&cfg.default_route);
    if cfg.deny_unmatched {
        d[1] = "* (deny_unmatched: 404)".into();
    }
    rows.push(d);
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", cfg.source);
    let _ = writeln!(
        out,
        "listen https={} admin={}{}",
        cfg.listen.https,
        cfg.listen.admin,
        cfg.listen.http_redirect.map(|a| format!(" http_redirect={a}")).unwrap_or_default()
    );
    let _ = writeln!(out, "upstream http://{}{}", cfg.upstream.origin, cfg.upstream.base_path);
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
