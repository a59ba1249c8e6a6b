//! The `moat` binary: CLI → telemetry → config → App::build → run until a
//! signal → drain.

use std::process::ExitCode;

use clap::Parser;
use moat::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match moat::config::load(Some(&config)) {
            Ok(cfg) => {
                print!("{}", moat::check::table(&cfg));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{} problem(s) found", e.problems.len());
                ExitCode::from(2)
            }
        },
        Command::Run { config } => run(config),
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
