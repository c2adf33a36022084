//! End-to-end tests: the operator's real Controllers against the Kubernetes API test server and
//! the Alexa API simulator (one test binary, to keep link time down).

// Test code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account_linking;
mod configuration;
mod credentials;
mod customer_codes;
mod divergence;
mod enablement;
mod fidelity;
mod import;
mod kstatus;
mod namespaces;
mod operations;
mod outputs;
mod steady_state;
mod support;
mod throttling;
