//! Controllers for the custom resources, and the machinery they share.

pub mod account_linking;
pub mod conditions;
pub mod context;
pub mod credentials;
pub mod digest;
pub mod enablement;
pub mod keys;
pub mod lifecycle;
pub mod outcomes;
pub mod runner;
pub mod secrets;
