//! cloud-realtime integration tests: the broker contract (Redis and in process), and the
//! service as real processes (two replicas on one Redis) with real websocket clients.
// Helpers of the tests unwrap too: a failed setup should fail its test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod broker_contract;
mod edges;
mod faults;
mod helpers;
mod production_profile;
mod replicas;
mod single;
