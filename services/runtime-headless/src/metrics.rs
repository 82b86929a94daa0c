//! Service-specific Prometheus series (the HTTP ones come from cloud-common).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use cloud_common::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub direction: String,
}

#[derive(Clone)]
pub struct RuntimeMetrics {
    pub active_sessions: Gauge,
    pub queue_depth: Gauge,
    pub running_turns: Gauge,
    pub lease_takeovers: Counter,
    pub turns: Family<OutcomeLabels, Counter>,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub sandbox_failures: Counter,
    pub steps_per_turn: Histogram,
    pub tokens: Family<TokenLabels, Counter>,
}

impl std::fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeMetrics")
    }
}

impl RuntimeMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            active_sessions: Gauge::default(),
            queue_depth: Gauge::default(),
            running_turns: Gauge::default(),
            lease_takeovers: Counter::default(),
            turns: Family::default(),
            tool_calls: Family::default(),
            sandbox_failures: Counter::default(),
            steps_per_turn: Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0]),
            tokens: Family::default(),
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
        metrics.register(
            "runtime_tool_calls",
            "Agent tool calls by tool and outcome (ok, error, aborted)",
            this.tool_calls.clone(),
        );
        metrics.register(
            "runtime_sandbox_start_failures",
            "bash calls refused because the sandbox could not start",
            this.sandbox_failures.clone(),
        );
        metrics.register(
            "runtime_steps_per_turn",
            "Model calls per finished turn",
            this.steps_per_turn.clone(),
        );
        metrics.register(
            "runtime_tokens",
            "Provider tokens of finished steps (direction: input, output)",
            this.tokens.clone(),
        );
        this
    }

    pub fn tool_call(&self, tool: &str, outcome: &str) {
        self.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn tokens(&self, input: u64, output: u64) {
        for (direction, n) in [("input", input), ("output", output)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    direction: direction.to_owned(),
                })
                .inc_by(n);
        }
    }

    pub fn turn(&self, outcome: &str) {
        self.turns
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
