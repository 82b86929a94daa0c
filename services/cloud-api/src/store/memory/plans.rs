//! Subscription plans and the runtime sessions counted against them.

use super::*;

#[async_trait]
impl PlanStore for MemoryStore {
    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        self.with(|t| {
            let mut plans = t.plans.clone();
            plans.sort_by(|a, b| a.id.cmp(&b.id));
            plans
        })
    }

    async fn update_plan(&self, id: &str, patch: &PlanPatch) -> StoreResult<()> {
        self.try_with(|t| patch_plan(t, id, patch))
    }

    async fn active_runtime_sessions(&self, _user: &UserId, _now: Timestamp) -> StoreResult<i64> {
        // Runtime sessions live in Postgres only (runtime-headless writes them).
        Ok(0)
    }
}

/// Applies `patch` to plan `id` (shared with the audited admin change); `NotFound` changes
/// nothing.
pub(super) fn patch_plan(t: &mut Tables, id: &str, patch: &PlanPatch) -> StoreResult<()> {
    if !t.plans.iter().any(|p| p.id == id) {
        return Err(StoreError::NotFound);
    }
    if patch.is_default == Some(true) {
        for p in t.plans.iter_mut() {
            p.is_default = false;
        }
    }
    if let Some(p) = t.plans.iter_mut().find(|p| p.id == id) {
        if let Some(l) = &patch.label {
            p.label = l.clone();
        }
        if let Some(n) = patch.parallel_sessions_limit {
            p.parallel_sessions_limit = n;
        }
        if let Some(d) = patch.is_default {
            p.is_default = d;
        }
        if let Some(h) = patch.is_hidden {
            p.is_hidden = h;
        }
    }
    Ok(())
}
