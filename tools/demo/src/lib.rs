//! Development tooling for Chatons Cloud, never deployed: a client that plays the shipped
//! desktop's sequence against a running stack ([`desktop`]) and a local stand-in model server
//! speaking the providers' streaming wires ([`model`]). `scripts/dev --demo` runs both against
//! the stack on embedded defaults.

pub mod cli;
pub mod desktop;
pub mod model;
pub mod report;

use std::process::ExitCode;

use cli::{Command, RunOptions};
use model::{ModelConfig, ModelServer};
use report::Report;

/// Runs a parsed command line.
pub async fn main_with(args: Vec<String>) -> ExitCode {
    match cli::parse(args) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Run(opts)) => run(&opts).await,
        Ok(Command::Check(opts)) => {
            let keyless =
                std::env::var(cli::PROVIDER_KEY_ENV).map_or(true, |k| k.trim().is_empty());
            if opts.provider.is_some() && keyless {
                eprintln!(
                    "chatons-demo: --provider-url needs the provider's key in {}",
                    cli::PROVIDER_KEY_ENV
                );
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Ok(Command::ModelServer {
            listen,
            delay,
            bash,
        }) => {
            let mut config = ModelConfig {
                delay,
                log: true,
                ..ModelConfig::default()
            };
            if let Some(b) = bash {
                config.bash = b;
            }
            serve_model(listen, config).await
        }
        Err(e) => {
            eprintln!("chatons-demo: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(opts: &RunOptions) -> ExitCode {
    let mut report = Report::new();
    match desktop::play(opts, &mut report).await {
        Ok(outcome) => {
            let turn = &outcome.turn;
            let tools: Vec<&str> = turn.tools.iter().map(|(n, _)| n.as_str()).collect();
            let text = format!(
                "{} signed in through PKCE, {} chars streamed in {} pieces with {} tool call(s) \
                 ({}) from {}, transcript saved{} — {:.1} s",
                outcome.email,
                turn.text_chars,
                turn.text_pieces,
                tools.len(),
                if tools.is_empty() {
                    "none".into()
                } else {
                    tools.join(", ")
                },
                if outcome.stand_in {
                    "the stand-in model"
                } else {
                    "the provider"
                },
                if outcome.registered_instance {
                    "; instance id registered by hand"
                } else {
                    ""
                },
                report.since_start().as_secs_f64()
            );
            report.summary(true, &text);
            ExitCode::SUCCESS
        }
        Err(f) => {
            let text = format!("step \"{}\" failed: {:#}", f.step, f.error);
            report.summary(false, &text);
            ExitCode::FAILURE
        }
    }
}

async fn serve_model(listen: std::net::SocketAddr, config: ModelConfig) -> ExitCode {
    let bash = config.bash;
    match ModelServer::start(listen, config).await {
        Ok(server) => {
            println!(
                "stand-in model on {} (OpenAI-compatible POST /v1/chat/completions, Anthropic \
                 POST /v1/messages; model {}; bash tool {}). Ctrl-C stops it.",
                server.base_url,
                model::MODEL_ID,
                if bash { "on" } else { "off" }
            );
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("chatons-demo: cannot watch SIGTERM: {e}");
                        return ExitCode::FAILURE;
                    }
                };
            tokio::select! {
                _ = server.wait() => ExitCode::FAILURE,
                _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
                _ = term.recv() => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("chatons-demo: cannot listen on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}
