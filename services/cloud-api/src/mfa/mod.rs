//! Sign-in factors besides the password: TOTP (RFC 6238) with recovery codes, and passkeys
//! (WebAuthn). The math and the store live here; the rules (enrolment, rate limits, which
//! factor a sign-in needs) are `app::second_factor` and `app::passkeys`.

pub mod postgres;
pub mod recovery;
pub mod store;
pub mod totp;

pub use postgres::PgFactors;
pub use store::{Ceremony, FactorStore, MemoryFactors, PasskeyRecord, TotpRecord};
