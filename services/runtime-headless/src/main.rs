//! `runtime-headless [serve | env [--markdown]]`
use std::process::ExitCode;

fn main() -> ExitCode {
    runtime_headless::main()
}
