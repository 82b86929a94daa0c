//! `cloud-api [serve | migrate | reseal-secrets | import-legacy --from <url> | env [--markdown]]`
use std::process::ExitCode;

fn main() -> ExitCode {
    cloud_api::main()
}
