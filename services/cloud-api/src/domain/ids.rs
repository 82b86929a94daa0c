//! Identifier newtypes. Ids are random (`user-<uuid>` …), never derived from user data, so they
//! cannot be guessed or collide (the first system derived them from the email).

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(
            Debug,
            Clone,
            Default,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "-{}"), uuid::Uuid::new_v4()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(UserId, "user");
id_type!(OrgId, "org");
id_type!(SessionId, "session");
id_type!(InviteId, "invite");
id_type!(ProviderId, "provider");
id_type!(ProjectId, "project");
id_type!(ConversationId, "conversation");
id_type!(MemoryId, "memory");
id_type!(InstanceId, "instance");
id_type!(FamilyId, "family");

impl InstanceId {
    /// The instance every user has without registering one (old desktops use it).
    pub fn canonical(user: &UserId) -> Self {
        Self(format!("instance-{}", user.0))
    }
}
