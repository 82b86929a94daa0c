//! A replica's cache of the plan list (plans change only through the admin routes, and every
//! token, grant and account answer reads them).

use crate::domain::Plan;

/// How long a replica keeps the plan list. Plans change only through the admin routes but
/// are read by every token, grant and account answer; an admin change shows at once on the
/// replica that made it and within this bound on the others.
const PLAN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The normalised plan list of one replica, refreshed after [`PLAN_CACHE_TTL`].
#[derive(Default)]
pub struct PlanCache {
    slot: std::sync::RwLock<Option<(std::time::Instant, Vec<Plan>)>>,
}

impl PlanCache {
    pub fn fresh(&self) -> Option<Vec<Plan>> {
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|(at, _)| at.elapsed() < PLAN_CACHE_TTL)
            .map(|(_, plans)| plans.clone())
    }

    pub fn store(&self, plans: &[Plan]) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), plans.to_vec()));
    }

    /// Forgets the list (after this replica changed a plan).
    pub fn invalidate(&self) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
