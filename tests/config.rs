//! Config errors as a user meets them: `moat check` and `moat run` on bad
//! files print `FILE: key: reason` and exit non-zero before binding anything.

use crate::common;

use common::*;

fn write(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("moat.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p.display().to_string())
}

#[test]
fn unknown_key_names_file_key_and_reason() {
    let (_d, p) = write("[upstream]\nurl = \"http://127.0.0.1:8000\"\nretries = 3\n");
    for cmd in ["check", "run"] {
        let (code, _, err) = moat_cmd(&[cmd, "--config", &p], &[]);
        assert_ne!(code, 0);
        assert!(err.contains(&format!("{p}: upstream.retries: unknown key")), "{cmd}: {err}");
    }
}

#[test]
fn bad_duration_names_file_key_and_reason() {
    let (_d, p) = write("[limits]\nidle_timeout = \"10 parsecs\"\n");
    let (code, _, err) = moat_cmd(&["check", "--config", &p], &[]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{p}: limits.idle_timeout: invalid duration \"10 parsecs\"")), "{err}");
}

#[test]
fn relative_upstream_url() {
    let (_d, p) = write("[upstream]\nurl = \"/just/a/path\"\n");
    let (code, _, err) = moat_cmd(&["check", "--config", &p], &[]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{p}: upstream.url: relative URL without a base")), "{err}");
}

#[test]
fn run_with_bad_config_binds_nothing() {
    // A listener address that is free now; a bad key elsewhere must stop moat before it binds it.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let (_d, p) =
        write(&format!("[listen]\nhttps = \"{addr}\"\nadmin = \"127.0.0.1:0\"\n[limits]\nshutdown_grace = \"soon\"\n"));
    let (code, _, err) = moat_cmd(&["run", "--config", &p], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("limits.shutdown_grace"), "{err}");
    assert!(std::net::TcpListener::bind(addr).is_ok(), "the https address was bound");
}

#[test]
fn every_problem_reported_with_environment_source() {
    let (_d, p) = write("[limits]\nmax_body = \"lots\"\nmystery = 1\n[upstream]\nurl = \"ftp://x\"\n");
    let (code, _, err) = moat_cmd(&["check", "--config", &p], &[("MOAT_LIMITS__IDLE_TIMEOUT", "never")]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{p}: limits.max_body: invalid size")), "{err}");
    assert!(err.contains(&format!("{p}: limits.mystery: unknown key")), "{err}");
    assert!(err.contains(&format!("{p}: upstream.url: scheme \"ftp\"")), "{err}");
    assert!(err.contains("MOAT_LIMITS__IDLE_TIMEOUT (environment): limits.idle_timeout: invalid duration"), "{err}");
    assert!(err.contains("4 problem(s) found"), "{err}");
}

#[test]
fn check_prints_route_table() {
    let (_d, p) = write(
        "deny_unmatched = true\n[[routes]]\nname = \"upload\"\npath = \"/api/v1/tasks/submit\"\nmethods = [\"POST\"]\nmax_body = \"100MiB\"\nresponse_timeout = \"30m\"\n",
    );
    let (code, out, err) = moat_cmd(&["check", "--config", &p], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("upload"), "{out}");
    assert!(out.contains("/api/v1/tasks/submit"), "{out}");
    assert!(out.contains("100MiB"), "{out}");
    assert!(out.contains("30m"), "{out}");
    assert!(out.contains("deny_unmatched"), "{out}");
}

#[test]
fn shipped_configs_pass_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    for entry in std::fs::read_dir(format!("{root}/config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let p = path.display().to_string();
            let (code, out, err) = moat_cmd(&["check", "--config", &p], &[]);
            assert_eq!(code, 0, "{p}:\n{err}{out}");
        }
    }
}

#[test]
fn includes_merge_under_the_including_file_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    w(
        "base.toml",
        "deny_unmatched = true\n[limits]\nmax_body = \"1MiB\"\nidle_timeout = \"30s\"\n\
         [[routes]]\nname = \"base-api\"\npath = \"/api\"\n",
    );
    let top = w(
        "moat.toml",
        "include = [\"base.toml\"]\n[limits]\nmax_body = \"2MiB\"\n[[routes]]\nname = \"top-api\"\npath = \"/api/v2\"\n",
    );
    let (code, out, err) = moat_cmd(&["check", "--config", &top], &[]);
    assert_eq!(code, 0, "{err}");
    // The including file's routes come first; the base's settings stay unless overridden.
    let top_at = out.find("top-api").unwrap();
    let base_at = out.find("base-api").unwrap();
    assert!(top_at < base_at, "{out}");
    assert!(out.contains("deny_unmatched"), "{out}");
    assert!(out.contains("2MiB") && !out.contains(" 1MiB "), "{out}");

    for (text, want) in [
        ("include = [\"missing.toml\"]\n", "include[0]: cannot read"),
        ("include = [\"moat.toml\"]\n", "include[0]: "),
        ("include = \"base.toml\"\n", "include: must be a list of file paths"),
    ] {
        let p = w("moat.toml", text);
        let (code, _, err) = moat_cmd(&["check", "--config", &p], &[]);
        assert_ne!(code, 0, "{text}");
        assert!(err.contains(&format!("{p}: {want}")), "{text}: {err}");
        assert!(!text.contains("moat.toml") || err.contains("includes itself"), "{err}");
    }
    w("broken.toml", "[limits\n");
    let p = w("moat.toml", "include = [\"broken.toml\"]\n");
    let (_, _, err) = moat_cmd(&["check", "--config", &p], &[]);
    assert!(err.contains("include[0]") && err.contains("broken.toml: invalid TOML: line 1"), "{err}");
    // A key the included file gets wrong is named with its path.
    w("typo.toml", "[limits]\nmax_bodyy = \"1MiB\"\n");
    let p = w("moat.toml", "include = [\"typo.toml\"]\n");
    let (_, _, err) = moat_cmd(&["check", "--config", &p], &[]);
    assert!(err.contains("limits.max_bodyy: unknown key"), "{err}");
}

#[test]
fn https_port_held_by_another_moat_fails_at_start() {
    // The HTTPS sockets share their port between moat's own workers only: a
    // second moat on a port the first one serves must not join it silently.
    let first = Moat::start_no_config(&[("MOAT_LISTEN__HTTPS", "127.0.0.1:0"), ("MOAT_LISTEN__ADMIN", "127.0.0.1:0")]);
    let https = first.https.to_string();
    let mut second = std::process::Command::new(moat_bin())
        .arg("run")
        .env_remove("MOAT_CONFIG")
        .env("MOAT_LISTEN__HTTPS", &https)
        .env("MOAT_LISTEN__ADMIN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    let status = status.unwrap_or_else(|| panic!("a second moat started on {https}: {err}"));
    assert!(!status.success(), "{err}");
    assert!(err.contains("cannot listen on") && err.contains("listen.https"), "{err}");
}
