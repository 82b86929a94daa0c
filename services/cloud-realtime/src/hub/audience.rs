//! Who may see an event. Every published event names its organization (publish rejects one
//! without it); a socket or an HTTP replay caller sees the events of the organizations the user
//! belongs to, as cloud-api reported them when access was granted.

use std::collections::BTreeSet;

use cloud_common::internal::RealtimeAccess;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    pub user_id: String,
    /// The organization the user is acting in (echoed in the `cloud.instance.status` envelopes).
    pub organization_id: String,
    pub organization_ids: BTreeSet<String>,
}

impl Audience {
    /// From cloud-api's answer: `organizationIds` when given, else the single `organizationId`.
    pub fn from_access(access: &RealtimeAccess) -> Self {
        let mut organization_ids: BTreeSet<String> = access
            .organization_ids
            .iter()
            .filter(|o| !o.is_empty())
            .cloned()
            .collect();
        if !access.organization_id.is_empty() {
            organization_ids.insert(access.organization_id.clone());
        }
        Self {
            user_id: access.user_id.clone(),
            organization_id: access.organization_id.clone(),
            organization_ids,
        }
    }

    /// An event is visible iff it names one of the user's organizations. Events without an
    /// organization are never delivered (publish refuses them; old stored ones are skipped).
    pub fn admits(&self, organization_id: Option<&str>) -> bool {
        match organization_id {
            Some(org) if !org.is_empty() => self.organization_ids.contains(org),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(org: &str, orgs: &[&str]) -> RealtimeAccess {
        RealtimeAccess {
            user_id: "u1".into(),
            cloud_instance_id: "i1".into(),
            organization_id: org.into(),
            organization_ids: orgs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn admits_only_the_users_organizations() {
        let a = Audience::from_access(&access("org-x", &["org-x", "org-z"]));
        assert!(a.admits(Some("org-x")));
        assert!(a.admits(Some("org-z")));
        assert!(!a.admits(Some("org-y")));
        assert!(!a.admits(None));
        assert!(!a.admits(Some("")));
    }

    #[test]
    fn falls_back_to_the_single_organization() {
        let a = Audience::from_access(&access("org-x", &[]));
        assert!(a.admits(Some("org-x")));
        assert!(!a.admits(Some("org-y")));
    }
}
