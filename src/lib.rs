//! alexa-skill-operator: keeps Alexa skill account linking and skill enablement in the state that
//! Kubernetes custom resources declare.
//!
//! The binary (`src/main.rs`) only parses flags and wires these modules together, so everything
//! here can be exercised from tests without a process boundary.

pub mod alexa;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod import;
pub mod metrics;
pub mod operator;
pub mod server;
