//! Metrics hook: the client reports what it does through [`ApiObserver`] so the operator's
//! metrics live outside this module and labels stay bounded (an [`Operation`], a status code).

use std::fmt;
use std::time::Duration;

/// Every HTTP operation the client performs. Used as a bounded metric label and in error
/// messages, never derived from user input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `GET /v1/skills/{skillId}/stages/{stage}/accountLinkingClient`.
    GetAccountLinking,
    /// `PUT /v1/skills/{skillId}/stages/{stage}/accountLinkingClient`.
    UpdateAccountLinking,
    /// `DELETE /v1/skills/{skillId}/stages/{stage}/accountLinkingClient`.
    DeleteAccountLinking,
    /// `PUT /v1/skills/{skillId}/stages/{stage}/enablement`.
    EnableStage,
    /// `GET /v1/skills/{skillId}/stages/{stage}/enablement`.
    GetStageEnablement,
    /// `DELETE /v1/skills/{skillId}/stages/{stage}/enablement`.
    DisableStage,
    /// `GET /v1/alexaApiEndpoint` (customer endpoint discovery).
    DiscoverEndpoints,
    /// `POST /v1/users/~current/skills/{skillId}/enablement`.
    CustomerEnable,
    /// `GET /v1/users/~current/skills/{skillId}/enablement`.
    CustomerStatus,
    /// `DELETE /v1/users/~current/skills/{skillId}/enablement`.
    CustomerDisable,
    /// `POST /auth/o2/token` at Login with Amazon (refresh-token grant).
    LwaToken,
}

impl Operation {
    /// All operations, for pre-registering metric series.
    pub const ALL: [Operation; 11] = [
        Operation::GetAccountLinking,
        Operation::UpdateAccountLinking,
        Operation::DeleteAccountLinking,
        Operation::EnableStage,
        Operation::GetStageEnablement,
        Operation::DisableStage,
        Operation::DiscoverEndpoints,
        Operation::CustomerEnable,
        Operation::CustomerStatus,
        Operation::CustomerDisable,
        Operation::LwaToken,
    ];

    /// Stable snake_case name, used as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetAccountLinking => "get_account_linking",
            Operation::UpdateAccountLinking => "update_account_linking",
            Operation::DeleteAccountLinking => "delete_account_linking",
            Operation::EnableStage => "enable_stage",
            Operation::GetStageEnablement => "get_stage_enablement",
            Operation::DisableStage => "disable_stage",
            Operation::DiscoverEndpoints => "discover_endpoints",
            Operation::CustomerEnable => "customer_enable",
            Operation::CustomerStatus => "customer_status",
            Operation::CustomerDisable => "customer_disable",
            Operation::LwaToken => "lwa_token",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives one callback per HTTP attempt, token refresh and throttling wait, so the operator
/// can export metrics without this module depending on a metrics library. Every method has an
/// empty default; callbacks run inline on the request path and must be cheap and non-blocking.
pub trait ApiObserver: Send + Sync {
    /// One HTTP attempt finished: `status` is `None` when no response arrived (transport error).
    fn request(&self, operation: Operation, status: Option<u16>, elapsed: Duration) {
        let _ = (operation, status, elapsed);
    }

    /// A Login with Amazon token refresh finished (`ok` false on any failure).
    fn token_refresh(&self, ok: bool) {
        let _ = ok;
    }

    /// A call is about to wait `wait` for the shared rate budget or a Retry-After gate.
    fn throttled(&self, wait: Duration) {
        let _ = wait;
    }

    /// Amazon asked (Retry-After) that this credential wait `wait` more; the operator's own
    /// rate budget never calls this.
    fn retry_after_gate(&self, wait: Duration) {
        let _ = wait;
    }

    /// Amazon throttled a credential at a rate it had accepted before, so its requests are
    /// sent at `rate` per second from now on (the adaptive rate of the throttle module).
    fn rate_reduced(&self, rate: f64) {
        let _ = rate;
    }
}
