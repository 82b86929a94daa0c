//! runtime-headless integration tests (one binary; modules share the harness).

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
