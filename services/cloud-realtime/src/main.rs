//! `cloud-realtime [serve | env [--markdown]]`
use std::process::ExitCode;

fn main() -> ExitCode {
    cloud_realtime::main()
}
