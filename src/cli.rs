//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// moat: a hardened TLS reverse-proxy sidecar.
#[derive(Debug, Parser)]
#[command(name = "moat", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (built-in defaults when no config file is given).
    Run {
        /// Config file (TOML).
        #[arg(long, short, env = "MOAT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print the effective policy of every route.
    Check {
        /// Config file (TOML).
        #[arg(long, short, env = "MOAT_CONFIG")]
        config: PathBuf,
    },
    /// Read a password on stdin and print an argon2id hash for `[auth] basic`.
    HashPassword,
    /// Print a new random key for `[auth.session] keys_file` (one line).
    SessionKey,
    /// Probe the admin listener's /healthz; exit 0 when healthy, 1 otherwise.
    Health {
        /// Admin listener address.
        #[arg(long, default_value = "127.0.0.1:9901", env = "MOAT_HEALTH_ADMIN")]
        admin: String,
    },
    /// Print the JSON Schema of the config file (for editors and CI).
    Schema,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write it and one page per subcommand to a directory.
    Man {
        /// Write moat.1 and moat-SUBCOMMAND.1 here instead of printing moat.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}
