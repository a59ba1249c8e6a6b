//! The `moat` binary: CLI → telemetry → config → App::build → run until a
//! signal → drain.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

use clap::Parser;
use moat::cli::{Cli, Command};

/// mimalloc: fewer instructions per allocation than glibc's malloc on the
/// request path, and per-thread free lists (see `benches/RESULTS.md` and
/// `crates/moat-alloc`).
#[global_allocator]
static GLOBAL: moat_alloc::MiMalloc = moat_alloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match moat::config::load(Some(&config)) {
            Ok(cfg) => {
                print!("{}", moat::check::table(&cfg));
                for w in moat::check::warnings(&cfg) {
                    eprintln!("warning: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{} problem(s) found", e.problems.len());
                ExitCode::from(2)
            }
        },
        Command::Run { config } => run(config),
        Command::HashPassword => hash_password(),
        Command::SessionKey => match moat::policy::session::new_key_text() {
            Ok(k) => {
                println!("{k}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("moat: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Health { admin } => health(&admin),
        Command::Schema => schema(),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "moat", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => man(out_dir.as_deref()),
    }
}

fn schema() -> ExitCode {
    match serde_json::to_string_pretty(&moat::config::json_schema()) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moat: cannot render the schema: {e}");
            ExitCode::FAILURE
        }
    }
}

fn man(out_dir: Option<&std::path::Path>) -> ExitCode {
    let cmd = <Cli as clap::CommandFactory>::command();
    let written = match out_dir {
        Some(dir) => clap_mangen::generate_to(cmd, dir),
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moat: cannot write the man page: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    use std::io::BufRead;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("moat: cannot read a password from stdin");
        return ExitCode::FAILURE;
    }
    let pass = line.trim_end_matches(['\r', '\n']);
    if pass.is_empty() {
        eprintln!("moat: empty password");
        return ExitCode::FAILURE;
    }
    match moat::policy::auth::hash_password(pass) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moat: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A plain HTTP/1.1 GET of /healthz with a short deadline (the image has no curl).
fn health(admin: &str) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let Some(addr) = admin.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        eprintln!("moat: invalid admin address {admin}");
        return ExitCode::FAILURE;
    };
    let probe = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("moat: {addr}/healthz is not healthy");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("moat: {addr}/healthz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Option<std::path::PathBuf>) -> ExitCode {
    let cfg = match moat::config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let _guard = moat::telemetry::init();
    for w in moat::check::warnings(&cfg) {
        tracing::warn!(warning = %w, "unsafe or surprising config");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moat: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let app = match moat::app::App::build(cfg).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "moat cannot start");
                eprintln!("moat: {e}");
                return ExitCode::FAILURE;
            }
        };
        let token = tokio_util::sync::CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        if let Err(e) = moat::shutdown::install(token.clone(), reload_tx) {
            eprintln!("moat: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        app.run(token, reload_rx).await;
        ExitCode::SUCCESS
    })
}
