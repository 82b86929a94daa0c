//! The one integration-test binary of cloud-api (one binary links once; modules share helpers).
// Helpers of the tests unwrap too: a failed setup should fail its test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod abuse_web;
mod accounts;
mod admin_portal;
mod bugs;
mod control_plane;
mod desktop;
mod device_login;
mod edges;
mod faults;
mod findings;
mod findings_web;
mod foundation;
mod helpers;
mod home;
mod housekeeping;
mod isolation;
mod legacy;
mod oidc;
mod openapi;
mod passkeys;
mod portal;
mod production_profile;
mod self_service;
mod side_contract;
mod store_contract;
mod tenant;
mod two_factor;
mod web;
