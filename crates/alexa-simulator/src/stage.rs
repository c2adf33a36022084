//! Skill stages as Amazon's paths and bodies spell them.
//!
//! A deliberate copy of the operator's `Stage` (src/crd/common.rs), not a shared type: the
//! simulator plays Amazon, so it must not inherit the operator's assumptions (its serde names,
//! its schema, a variant the operator might add); if the two ever disagree, the tests that run
//! the operator against the simulator show it.

use serde::{Deserialize, Serialize};

/// Skill stage as it appears in Amazon's URL paths and request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The in-development version of the skill.
    Development,
    /// The certified, published version of the skill.
    Live,
}

impl Stage {
    /// Lower-case name used on the wire and in paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Development => "development",
            Stage::Live => "live",
        }
    }

    /// Parses a path segment or body value; Amazon accepts only the lower-case names.
    pub fn parse(stage: &str) -> Option<Stage> {
        match stage {
            "development" => Some(Stage::Development),
            "live" => Some(Stage::Live),
            _ => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
