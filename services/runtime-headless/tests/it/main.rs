//! runtime-headless integration tests (one binary; modules share the harness).
// Helpers of the tests unwrap too: a failed setup should fail its test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod bench;
mod e2e;
mod edges;
mod production_profile;
mod store_contract;
mod support;
mod tools;
mod workers;
mod workspaces;
