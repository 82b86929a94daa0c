//! Request-side helpers of the JSON API: the authenticated caller, the client address, list
//! parameters and cursors (defined where the portal and the OIDC pages can share them).

pub use crate::paging::*;
pub use crate::web::caller::{Caller, apply_admin_list, require_admin};
pub use crate::web::client_ip::ClientIp;
