//! Service-specific Prometheus series (the HTTP ones come from cloud-common).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use cloud_common::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone)]
pub struct RuntimeMetrics {
    pub active_sessions: Gauge,
    pub queue_depth: Gauge,
    pub running_turns: Gauge,
    pub lease_takeovers: Counter,
    pub turns: Family<OutcomeLabels, Counter>,
}

impl RuntimeMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            active_sessions: Gauge::default(),
            queue_depth: Gauge::default(),
            running_turns: Gauge::default(),
            lease_takeovers: Counter::default(),
            turns: Family::default(),
        };
        metrics.register(
            "runtime_active_sessions",
            "Active runtime sessions (all replicas)",
            this.active_sessions.clone(),
        );
        metrics.register(
            "runtime_queue_depth",
            "Queued turns (all replicas)",
            this.queue_depth.clone(),
        );
        metrics.register(
            "runtime_running_turns",
            "Turns running on this replica",
            this.running_turns.clone(),
        );
        metrics.register(
            "runtime_lease_takeovers",
            "Expired leases taken over by this replica",
            this.lease_takeovers.clone(),
        );
        metrics.register(
            "runtime_turns",
            "Finished turns by outcome",
            this.turns.clone(),
        );
        this
    }

    pub fn turn(&self, outcome: &str) {
        self.turns
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
