//! The memory algorithms of the first system (normalisation, topic keys, fingerprints, ranking),
//! ported so both stores and existing data agree on them.

use super::Timestamp;

use super::model::Memory;

pub const KINDS: &[&str] = &[
    "preference",
    "decision",
    "fact",
    "profile",
    "repo_convention",
    "task_state",
    "summary",
];

/// Kinds where a newer memory on the same topic supersedes the older ones.
pub const SUPERSEDING_KINDS: &[&str] = &["decision", "preference", "repo_convention"];

pub fn normalize_kind(kind: Option<&str>) -> String {
    let k = kind.unwrap_or("").trim().to_lowercase();
    let k = match k.as_str() {
        "conversation-summary" | "context" => "summary".to_owned(),
        _ => k,
    };
    if KINDS.contains(&k.as_str()) {
        k
    } else {
        "fact".to_owned()
    }
}

/// Lower-case, whitespace collapsed, trimmed. (The first system also applied NFKC; plain
/// lower-casing gives the same result for ASCII, which is what topic keys keep anyway.)
pub fn normalize_text(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces every run of characters outside `[a-z0-9]` by one dash.
fn dashify(s: &str) -> String {
    let mut out = String::new();
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out
}

pub fn topic_key(
    explicit: Option<&str>,
    kind: &str,
    title: Option<&str>,
    content: &str,
    tags: &[String],
) -> String {
    if let Some(t) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        let key: String = dashify(&normalize_text(t)).chars().take(200).collect();
        return if key.is_empty() { "memory".into() } else { key };
    }
    let joined = format!(
        "{} {} {} {}",
        kind,
        title.unwrap_or(""),
        content,
        tags.join(" ")
    );
    let key = dashify(&normalize_text(&joined));
    let key: String = key.trim_matches('-').chars().take(96).collect();
    if key.is_empty() { "memory".into() } else { key }
}

pub fn fingerprint(
    scope: &str,
    organization_id: &str,
    user_id: Option<&str>,
    project_id: Option<&str>,
    kind: &str,
    topic_key: &str,
) -> String {
    let user = if scope == "global" {
        user_id.unwrap_or("")
    } else {
        ""
    };
    format!(
        "{scope}::{organization_id}::{user}::{}::{kind}::{topic_key}",
        project_id.unwrap_or("")
    )
}

/// Whether `memory` matches a free-text query the way the in-memory store approximates
/// full-text search (substring of title, topic key or content).
pub fn text_matches(memory: &Memory, query: &str) -> bool {
    let q = normalize_text(query);
    if q.is_empty() {
        return false;
    }
    let hay = normalize_text(&format!(
        "{} {} {} {}",
        memory.title.as_deref().unwrap_or(""),
        memory.topic_key,
        memory.content,
        memory.tags.join(" ")
    ));
    hay.contains(&q) || tokens(&q).iter().any(|t| hay.contains(t.as_str()))
}

fn tokens(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A ranked search hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub memory: Memory,
    pub fts_rank: f64,
    pub score: f64,
    pub match_reasons: Vec<&'static str>,
}

/// Re-ranks candidates (with their full-text rank) as the first system did, best first.
pub fn rank(candidates: Vec<(Memory, f64)>, query: &str, now: Timestamp) -> Vec<Hit> {
    let q = normalize_text(query);
    let toks = tokens(&q);
    let mut hits: Vec<Hit> = candidates
        .into_iter()
        .map(|(m, fts)| {
            let fts = if fts.is_finite() { fts.min(1.0) } else { 0.3 };
            let title = normalize_text(m.title.as_deref().unwrap_or(""));
            let topic = normalize_text(&m.topic_key);
            let content = normalize_text(&m.content);
            let tags: Vec<String> = m.tags.iter().map(|t| normalize_text(t)).collect();
            let mut boosts = 0.0;
            let mut reasons = Vec::new();
            if !q.is_empty() && !title.is_empty() && title == q {
                boosts += 0.24;
                reasons.push("exact_title");
            } else if !q.is_empty() && title.contains(&q) {
                boosts += 0.10;
                reasons.push("title");
            }
            let q_dashed = dashify(&q);
            if !q.is_empty() && (topic == q || topic == q_dashed) {
                boosts += 0.12;
                reasons.push("topic_key");
            } else if !q.is_empty() && (topic.contains(&q) || topic.contains(&q_dashed)) {
                boosts += 0.09;
                reasons.push("topic_key_partial");
            }
            if !q.is_empty() && content.contains(&q) {
                boosts += 0.10;
                reasons.push("content");
            }
            let tag_hits = tags
                .iter()
                .filter(|t| !t.is_empty() && (q.contains(t.as_str()) || toks.contains(t)))
                .count();
            if tag_hits > 0 {
                boosts += (0.08 * tag_hits as f64).min(0.16);
                reasons.push("tags");
            }
            let overlap = if toks.is_empty() {
                0.0
            } else {
                let found = toks
                    .iter()
                    .filter(|t| {
                        title.contains(t.as_str())
                            || content.contains(t.as_str())
                            || topic.contains(t.as_str())
                            || tags.iter().any(|g| g.contains(t.as_str()))
                    })
                    .count();
                found as f64 / toks.len() as f64
            };
            let last = m
                .reinforced_at
                .or(m.last_used_at)
                .unwrap_or(m.updated_at)
                .max(m.created_at);
            let age_h = ((now - last).num_seconds() as f64 / 3600.0).max(0.0);
            let freshness = if age_h <= 168.0 {
                1.0
            } else {
                let used = f64::from(m.times_used.clamp(0, 20));
                (-((age_h - 168.0) / (168.0 * (1.0 + 0.07 * used))) * 0.12).exp()
            };
            let raw = fts * 0.48
                + overlap * 0.18
                + m.confidence * 0.12
                + 0.5 * 0.12
                + freshness * 0.10
                + boosts;
            let score = (raw.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0;
            Hit {
                memory: m,
                fts_rank: fts,
                score,
                match_reasons: reasons,
            }
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| b.memory.updated_at.cmp(&a.memory.updated_at))
    });
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_topic_keys() {
        assert_eq!(normalize_kind(Some(" Context ")), "summary");
        assert_eq!(normalize_kind(Some("weird")), "fact");
        assert_eq!(normalize_kind(None), "fact");
        assert_eq!(
            topic_key(None, "fact", Some("Tabs"), "Use tabs!", &["style".into()]),
            "fact-tabs-use-tabs-style"
        );
        assert_eq!(
            topic_key(Some("My Topic"), "fact", None, "", &[]),
            "my-topic"
        );
        assert_eq!(topic_key(None, "", None, "", &[]), "memory");
    }

    #[test]
    fn fingerprint_has_user_only_for_global() {
        assert_eq!(
            fingerprint("global", "o", Some("u"), None, "fact", "t"),
            "global::o::u::::fact::t"
        );
        assert_eq!(
            fingerprint("project", "o", Some("u"), Some("p"), "fact", "t"),
            "project::o::::p::fact::t"
        );
    }
}
