//! The Alexa API simulator as a client sees it: status codes, bodies, headers, counts. One test
//! binary (so one link), one module per topic; `support` holds what they share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account_linking;
mod admin;
mod enablement;
mod faults;
mod lwa;
mod serving;
mod support;
