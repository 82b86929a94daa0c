//! The small command line every binary shares: no argument serves; `env` prints the
//! environment variables the binary reads (`--markdown` for the README table, default one name
//! per line for the manifest-contract test).

use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::config::{CommonConfig, ConfigErrors, Env, EnvVar, markdown_table};
use crate::server::{self, Shutdown};

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

/// A binary's configuration, as the shared [`main`] needs it (each service implements it on its
/// `Config`).
pub trait Service: Sized + Send + 'static {
    /// The binary's name, prefixed to what it prints.
    const NAME: &'static str;
    /// Every variable it reads (`env` prints them).
    fn env_vars() -> Vec<EnvVar>;
    fn from_env(env: &Env) -> Result<Self, ConfigErrors>;
    fn common(&self) -> &CommonConfig;
    /// The socket `serve` listens on; default `0.0.0.0:PORT`.
    fn bind(&self) -> impl Future<Output = std::io::Result<TcpListener>> + Send {
        server::bind(self.common().port)
    }
    /// Serves on `listener` until `shutdown` triggers, then drains.
    fn serve(
        self,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Any other subcommand (`name`, then the arguments after it).
    fn command(
        self,
        name: String,
        args: Vec<String>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = args;
        async move { anyhow::bail!("unknown command {name:?} (try --help)") }
    }
}

/// The `main()` of every binary: `env` and `--help` print and exit; a bad configuration exits 2
/// naming each variable; then tracing, the runtime, and `serve` (signal handlers installed
/// before the socket is bound) or the service's other command. Errors exit 1.
pub fn main<S: Service>(args: Vec<String>) -> ExitCode {
    let command = match parse(&args, &S::env_vars()) {
        Command::PrintedAndExit(code) => return code,
        other => other,
    };
    let config = match S::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => return report_config_errors(S::NAME, &e),
    };
    crate::telemetry::init(config.common().log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => {
                let shutdown = Shutdown::new();
                server::trigger_on_signals(shutdown.clone());
                let listener = config.bind().await?;
                config.serve(listener, shutdown).await
            }
            Command::Other(name) => config.command(name, args[1..].to_vec()).await,
            Command::PrintedAndExit(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Stopped with an error.");
            eprintln!("{}: {e:#}", S::NAME);
            ExitCode::FAILURE
        }
    }
}
