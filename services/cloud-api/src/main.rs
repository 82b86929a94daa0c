//! `cloud-api [serve | migrate | env [--markdown]]`
use std::process::ExitCode;

fn main() -> ExitCode {
    cloud_api::main()
}
