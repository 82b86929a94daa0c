//! Command line: `chatons-demo [run] [options]` plays the desktop's sequence,
//! `chatons-demo model-server [options]` only serves the stand-in model.

use std::net::SocketAddr;
use std::time::Duration;

/// Where the provider key of `--provider-url` is read from (never a flag: flags end up in
/// shell history and process listings).
pub const PROVIDER_KEY_ENV: &str = "CHATONS_DEMO_PROVIDER_KEY";

pub const USAGE: &str = "\
chatons-demo — plays the Chatons desktop's sequence against a running stack

usage:
  chatons-demo [run] [options]         sign up, sign the desktop in, run one agent turn
  chatons-demo model-server [options]  serve only the stand-in model (OpenAI-compatible and
                                       Anthropic streaming wires) until stopped

run options:
  --api URL             cloud-api base URL (default http://127.0.0.1:4000)
  --realtime URL        cloud-realtime base URL (default: bootstrap's endpoints, as the desktop)
  --runtime URL         runtime-headless base URL (default: bootstrap's endpoints)
  --provider-url URL    a real provider's base URL (e.g. https://api.openai.com/v1) instead of
                        the stand-in; its key is read from CHATONS_DEMO_PROVIDER_KEY
  --provider-kind KIND  openai (default) or anthropic
  --model ID            the provider's model id (required with --provider-url)
  --prompt TEXT         what to ask (default: a request to write a note and read it back)
  --timeout SECONDS     how long the agent turn may take (default 180)
  --delay-ms N          the stand-in's pause between streamed pieces (default 60)

model-server options:
  --listen ADDR         address to bind (default 127.0.0.1:4010)
  --delay-ms N          pause between streamed pieces (default 60)
  --no-bash             never call the bash tool (default: only when bwrap is on PATH)
";

pub const DEFAULT_PROMPT: &str = "Write a short note into the workspace, read it back to check \
it, then tell me what you did.";

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunOptions),
    ModelServer {
        listen: SocketAddr,
        delay: Duration,
        bash: Option<bool>,
    },
    /// Only validates run options (and that the provider key is set when needed), so
    /// `scripts/dev --demo` can refuse bad options before it starts the stack.
    Check(RunOptions),
    Help,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub api: String,
    pub realtime: Option<String>,
    pub runtime: Option<String>,
    pub provider: Option<RealProvider>,
    pub prompt: String,
    pub timeout: Duration,
    pub delay: Duration,
}

/// A provider given on the command line (the key comes from the environment later).
#[derive(Debug, Clone, PartialEq)]
pub struct RealProvider {
    pub url: String,
    pub kind: String,
    pub model: String,
}

/// Reads `--name value` and `--name=value` pairs and bare flags.
struct Args {
    items: std::vec::IntoIter<String>,
}

impl Args {
    fn next_option(&mut self) -> Option<Result<(String, Option<String>), String>> {
        let item = self.items.next()?;
        let Some(name) = item.strip_prefix("--") else {
            return Some(Err(format!("unexpected argument {item:?}")));
        };
        Some(Ok(match name.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (name.to_owned(), None),
        }))
    }

    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, String> {
        inline
            .or_else(|| self.items.next())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("--{name} needs a value"))
    }
}

fn url(name: &str, v: String) -> Result<String, String> {
    let parsed = url::Url::parse(&v).map_err(|e| format!("--{name}: {v:?} is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("--{name}: {v:?} must be http or https"));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

fn number(name: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("--{name}: {v:?} is not a whole number"))
}

pub fn parse(args: Vec<String>) -> Result<Command, String> {
    let mut items = args;
    let mut check = false;
    let mode = match items.first().map(String::as_str) {
        Some("model-server") => Some(items.remove(0)),
        Some("run") => {
            items.remove(0);
            None
        }
        Some("check") => {
            items.remove(0);
            check = true;
            None
        }
        _ => None,
    };
    let mut args = Args {
        items: items.into_iter(),
    };
    if mode.is_some() {
        return parse_model_server(&mut args);
    }
    let mut run = RunOptions {
        api: "http://127.0.0.1:4000".into(),
        realtime: None,
        runtime: None,
        provider: None,
        prompt: DEFAULT_PROMPT.into(),
        timeout: Duration::from_secs(180),
        delay: Duration::from_millis(60),
    };
    let (mut provider_url, mut kind, mut model) = (None, "openai".to_owned(), None);
    while let Some(opt) = args.next_option() {
        let (name, inline) = opt?;
        match name.as_str() {
            "help" | "h" => return Ok(Command::Help),
            "api" => run.api = url(&name, args.value(&name, inline)?)?,
            "realtime" => run.realtime = Some(url(&name, args.value(&name, inline)?)?),
            "runtime" => run.runtime = Some(url(&name, args.value(&name, inline)?)?),
            "provider-url" => provider_url = Some(url(&name, args.value(&name, inline)?)?),
            "provider-kind" => {
                kind = args.value(&name, inline)?;
                if kind != "openai" && kind != "anthropic" {
                    return Err(format!(
                        "--provider-kind: {kind:?} must be openai or anthropic"
                    ));
                }
            }
            "model" => model = Some(args.value(&name, inline)?),
            "prompt" => run.prompt = args.value(&name, inline)?,
            "timeout" => {
                run.timeout = Duration::from_secs(number(&name, &args.value(&name, inline)?)?)
            }
            "delay-ms" => {
                run.delay = Duration::from_millis(number(&name, &args.value(&name, inline)?)?)
            }
            "provider-key" | "key" | "api-key" => {
                return Err(format!(
                    "--{name}: keys are never passed as flags; set {PROVIDER_KEY_ENV} instead"
                ));
            }
            _ => return Err(format!("unknown option --{name} (try --help)")),
        }
    }
    match (provider_url, model) {
        (Some(url), Some(model)) => run.provider = Some(RealProvider { url, kind, model }),
        (Some(_), None) => return Err("--provider-url needs --model".into()),
        (None, Some(_)) => return Err("--model applies to --provider-url only".into()),
        (None, None) => {}
    }
    Ok(if check {
        Command::Check(run)
    } else {
        Command::Run(run)
    })
}

fn parse_model_server(args: &mut Args) -> Result<Command, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 4010).into();
    let mut delay = Duration::from_millis(60);
    let mut bash = None;
    while let Some(opt) = args.next_option() {
        let (name, inline) = opt?;
        match name.as_str() {
            "help" | "h" => return Ok(Command::Help),
            "listen" => {
                let v = args.value(&name, inline)?;
                listen = v.parse().map_err(|_| {
                    format!("--listen: {v:?} is not an address like 127.0.0.1:4010")
                })?;
            }
            "delay-ms" => {
                delay = Duration::from_millis(number(&name, &args.value(&name, inline)?)?)
            }
            "no-bash" => bash = Some(false),
            _ => return Err(format!("unknown option --{name} (try --help)")),
        }
    }
    Ok(Command::ModelServer {
        listen,
        delay,
        bash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn defaults_and_a_real_provider() {
        let Ok(Command::Run(run)) = parse(args(&[])) else {
            panic!("run")
        };
        assert_eq!(run.api, "http://127.0.0.1:4000");
        assert_eq!(run.provider, None);
        let Ok(Command::Run(run)) = parse(args(&[
            "run",
            "--api=http://127.0.0.1:14000/",
            "--provider-url",
            "https://api.anthropic.com/v1",
            "--provider-kind",
            "anthropic",
            "--model",
            "claude-x",
        ])) else {
            panic!("run")
        };
        assert_eq!(run.api, "http://127.0.0.1:14000");
        assert_eq!(
            run.provider,
            Some(RealProvider {
                url: "https://api.anthropic.com/v1".into(),
                kind: "anthropic".into(),
                model: "claude-x".into()
            })
        );
    }

    #[test]
    fn refuses_keys_as_flags_and_bad_values() {
        let err = parse(args(&["--provider-key", "sk-live"])).unwrap_err();
        assert!(err.contains(PROVIDER_KEY_ENV), "{err}");
        assert!(parse(args(&["--provider-url", "https://x.test"])).is_err());
        assert!(parse(args(&["--provider-kind", "mistral"])).is_err());
        assert!(parse(args(&["--api", "ftp://x"])).is_err());
        assert!(parse(args(&["--timeout", "soon"])).is_err());
        assert!(parse(args(&["--prompt"])).is_err());
        assert!(parse(args(&["stray"])).is_err());
    }

    #[test]
    fn check_parses_run_options() {
        let Ok(Command::Check(run)) = parse(args(&["check", "--timeout", "5"])) else {
            panic!("check")
        };
        assert_eq!(run.timeout, Duration::from_secs(5));
        assert!(parse(args(&["check", "--nope"])).is_err());
    }

    #[test]
    fn model_server_options() {
        let cmd = parse(args(&[
            "model-server",
            "--listen",
            "127.0.0.1:0",
            "--no-bash",
        ]))
        .unwrap();
        assert_eq!(
            cmd,
            Command::ModelServer {
                listen: ([127, 0, 0, 1], 0).into(),
                delay: Duration::from_millis(60),
                bash: Some(false)
            }
        );
    }
}
