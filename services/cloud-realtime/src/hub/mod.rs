//! The domain of cloud-realtime: per-instance stream positions, the resume / catch-up rules,
//! the audience filter and envelope validation. Plain types and rules, no I/O: the broker
//! stores and moves events, the websocket handler applies these rules.

pub mod audience;
pub mod budget;
pub mod client;
pub mod stream;
pub mod validate;

pub use audience::Audience;
pub use budget::MessageBudget;
pub use client::ClientMessage;
pub use stream::{Cursor, LiveStep, Snapshot, StreamPlan};
pub use validate::{validate_envelope, validate_instance_id};
