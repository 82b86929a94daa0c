//! The closed sets of values a record's field takes (roles, kinds, statuses, scopes).
//!
//! Each is stored and answered as its snake_case text (the first system's columns and wire
//! format); in the code it is an enum, so a misspelt state does not compile and a match names
//! every case. A stored value outside the set is a decode error, never a default.

/// Writes a text-backed enum: `as_str`, `parse` (exact text), `ALL`, `TEXTS`, `Display`, and the
/// `TryFrom<String>` that `sqlx(try_from = "String")` decodes a column with.
macro_rules! text_states {
    ($(
        $(#[doc = $doc:tt])*
        $name:ident { $($(#[doc = $vdoc:tt])* $variant:ident = $text:literal,)+ }
    )*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text of every value, in declaration order (the OpenAPI enums list them).
            pub const TEXTS: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value this exact text names, if any (callers trim).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                $name::parse(&text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($name)))
            }
        }
    )*};
}

text_states! {
    /// Where an RFC 8628 device authorization grant stands: waiting for the user, decided by
    /// them, or redeemed by the device (once).
    DeviceGrantState {
        Pending = "pending",
        Approved = "approved",
        Denied = "denied",
        Consumed = "consumed",
    }

    /// A member's role in an organization.
    Role {
        Owner = "owner",
        Admin = "admin",
        Member = "member",
        BillingViewer = "billing_viewer",
    }

    /// What a project holds: a git repository the agent works in, or conversations only.
    ProjectKind {
        ConversationOnly = "conversation_only",
        Repository = "repository",
    }

    /// What the cloud agent may do in a project's workspace.
    WorkspaceCapability {
        /// Chat only: no files, no shell.
        ChatOnly = "chat_only",
        /// File and shell tools in the project's workspace.
        FullTools = "full_tools",
    }

    /// Where a conversation stands (set by the desktop).
    ConversationStatus {
        Active = "active",
        Done = "done",
        Archived = "archived",
    }

    /// Whom a memory belongs to: its author (global) or a project (everyone in it).
    MemoryScope {
        Global = "global",
        Project = "project",
    }

    /// Whether a memory is current, or replaced by a newer one of the same fingerprint.
    MemoryStatus {
        Active = "active",
        Superseded = "superseded",
    }
}

impl Role {
    /// Owners and admins manage the organization (members, invites, providers, name).
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_text() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
        }
        for s in ConversationStatus::ALL {
            assert_eq!(ConversationStatus::try_from(s.to_string()), Ok(*s));
        }
        assert_eq!(ProjectKind::parse("Repository"), None, "exact text only");
        assert!(MemoryScope::try_from("all".to_owned()).is_err());
        assert_eq!(WorkspaceCapability::FullTools.as_str(), "full_tools");
    }
}
