//! `chatons-demo`: see `chatons-demo --help` and the crate docs.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    chatons_demo::main_with(std::env::args().skip(1).collect()).await
}
