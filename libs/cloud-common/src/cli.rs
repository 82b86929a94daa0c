//! The small command line every binary shares: no argument serves; `env` prints the
//! environment variables the binary reads (`--markdown` for the README table, default one name
//! per line for the manifest-contract test).

use std::process::ExitCode;

use crate::config::{ConfigErrors, EnvVar, markdown_table};

pub enum Command {
    Serve,
    /// Binary-specific subcommands (e.g. `cloud-api migrate`).
    Other(String),
    PrintedAndExit(ExitCode),
}

/// Interprets `args` (without the program name). `env` is handled here.
pub fn parse(args: &[String], vars: &[EnvVar]) -> Command {
    match args.first().map(String::as_str) {
        None | Some("serve") => Command::Serve,
        Some("env") => {
            if args.iter().any(|a| a == "--markdown") {
                print!("{}", markdown_table(vars));
            } else {
                for v in vars {
                    println!("{}", v.name);
                }
            }
            Command::PrintedAndExit(ExitCode::SUCCESS)
        }
        Some("-h" | "--help" | "help") => {
            println!("usage: <binary> [serve | env [--markdown] | <service command>]");
            Command::PrintedAndExit(ExitCode::SUCCESS)
        }
        Some(other) => Command::Other(other.to_owned()),
    }
}

/// Prints every configuration error, one per line, and returns the exit code for "bad config".
pub fn report_config_errors(service: &str, errors: &ConfigErrors) -> ExitCode {
    for e in &errors.0 {
        eprintln!("{service}: invalid configuration: {e}");
    }
    ExitCode::from(2)
}
