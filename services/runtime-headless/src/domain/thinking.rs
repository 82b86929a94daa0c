//! Thinking levels as the desktop names them, and what each provider wire makes of them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingLevel {
    #[default]
    Off,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
}

pub const ALL: [ThinkingLevel; 6] = [
    ThinkingLevel::Off,
    ThinkingLevel::Minimal,
    ThinkingLevel::Low,
    ThinkingLevel::Medium,
    ThinkingLevel::High,
    ThinkingLevel::Xhigh,
];

impl ThinkingLevel {
    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|l| l.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
        }
    }

    /// `cycle_thinking_level`: the next level, wrapping around.
    pub fn next(self) -> Self {
        let i = ALL.iter().position(|l| *l == self).unwrap_or(0);
        ALL[(i + 1) % ALL.len()]
    }

    /// OpenAI's `reasoning_effort` (also understood by most compatible servers). `None`: do not
    /// send the field, which non-reasoning models would refuse.
    pub fn openai_effort(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::Minimal => Some("minimal"),
            Self::Low => Some("low"),
            Self::Medium => Some("medium"),
            Self::High | Self::Xhigh => Some("high"),
        }
    }

    /// Anthropic's extended-thinking budget in tokens (`None`: thinking off).
    pub fn anthropic_budget(self) -> Option<u32> {
        match self {
            Self::Off => None,
            Self::Minimal => Some(1024),
            Self::Low => Some(2048),
            Self::Medium => Some(8192),
            Self::High => Some(16_384),
            Self::Xhigh => Some(32_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cycle() {
        for l in ALL {
            assert_eq!(ThinkingLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(ThinkingLevel::parse("huge"), None);
        assert_eq!(ThinkingLevel::Xhigh.next(), ThinkingLevel::Off);
        assert_eq!(ThinkingLevel::Off.next(), ThinkingLevel::Minimal);
    }

    #[test]
    fn maps_to_each_wire() {
        assert_eq!(ThinkingLevel::Off.openai_effort(), None);
        assert_eq!(ThinkingLevel::Xhigh.openai_effort(), Some("high"));
        assert_eq!(ThinkingLevel::Off.anthropic_budget(), None);
        assert!(ThinkingLevel::High.anthropic_budget() > ThinkingLevel::Low.anthropic_budget());
    }
}
