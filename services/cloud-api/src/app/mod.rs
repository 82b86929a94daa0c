//! Application layer: one function per use case, holding the rules and the store calls, so the
//! adapters (`http/`, `portal/`, `oidc/`) only extract input, call one function and render.
//! Functions return [`crate::domain::DomainError`]; each adapter maps it once.

#[macro_use]
mod listing;

pub mod access;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod bootstrap;
pub mod conversations;
pub mod device;
pub mod email;
pub mod grants;
pub mod housekeeping;
pub mod instances;
pub mod memory;
pub mod organizations;
pub mod passkeys;
pub mod projects;
pub mod providers;
pub mod second_factor;
pub mod self_service;
pub mod tokens;
pub mod web_accounts;
