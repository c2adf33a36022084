//! Controllers for the custom resources, and the machinery they share.

pub mod conditions;
pub mod secrets;
