//! Answers as handlers build them, turned into HTTP responses in one place so every error body
//! has Amazon's `{"message","code"}` shape.

use std::fmt::Display;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::Stage;
use crate::requests::FaultKind;

/// One rule a request broke, as SMAPI reports it in `violations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Violation {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Violation {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Violation {
        Violation {
            code,
            message: message.into(),
        }
    }

    /// `MISSING_REQUIRED_PROPERTY`: a property the request must carry is absent, null or empty.
    pub(crate) fn missing(path: &str) -> Violation {
        Violation::new(
            "MISSING_REQUIRED_PROPERTY",
            format!("Property '{path}' is required."),
        )
    }

    /// `INVALID_DATA_TYPE`: a property has the wrong JSON type; `expected` reads "a string".
    pub(crate) fn wrong_type(path: &str, expected: &str) -> Violation {
        Violation::new(
            "INVALID_DATA_TYPE",
            format!("Property '{path}' must be {expected}."),
        )
    }

    /// `INVALID_ENUM_VALUE`: a property holds a value outside its enumeration; `shown` is the
    /// value as the message quotes it.
    pub(crate) fn not_one_of(path: &str, shown: impl Display, allowed: &[&str]) -> Violation {
        Violation::new(
            "INVALID_ENUM_VALUE",
            format!(
                "Property '{path}' has value {shown}; valid values are {}.",
                allowed.join(", ")
            ),
        )
    }
}

/// 404 for a skill id no developer account has.
pub(crate) fn skill_not_found(skill_id: &str) -> Reply {
    Reply::error(404, "NOT_FOUND", format!("Skill {skill_id} not found."))
}

/// 404 for a stage the skill does not have (a development-only skill asked about live).
pub(crate) fn no_such_stage(skill_id: &str, stage: Stage) -> Reply {
    Reply::error(
        404,
        "NOT_FOUND",
        format!("Skill {skill_id} has no {stage} stage."),
    )
}

/// Parses a request body as JSON, or answers 400 `INVALID_REQUEST_BODY` as SMAPI does.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|err| {
        Reply::violations(vec![Violation::new(
            "INVALID_REQUEST_BODY",
            format!("The request body is not valid JSON: {err}."),
        )])
    })
}

/// A handler's answer before it becomes an HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) fault: Option<FaultKind>,
}

impl Reply {
    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
            fault: None,
        }
    }

    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
            fault: None,
        }
    }

    /// Amazon's error body: `{"message": ..., "code": ...}`.
    pub(crate) fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply::json(
            status,
            serde_json::json!({"message": message.into(), "code": code}),
        )
    }

    /// 400 with `message`, `code` (of the first violation) and the full `violations` list.
    pub(crate) fn violations(violations: Vec<Violation>) -> Reply {
        let (code, message) = violations
            .first()
            .map(|v| (v.code, v.message.clone()))
            .unwrap_or(("INVALID_REQUEST", "The request is invalid.".to_string()));
        Reply::json(
            400,
            serde_json::json!({"message": message, "code": code, "violations": violations}),
        )
    }

    /// OAuth 2.0 error body as LWA sends it.
    pub(crate) fn oauth_error(status: u16, error: &str, description: impl Into<String>) -> Reply {
        Reply::json(
            status,
            serde_json::json!({"error": error, "error_description": description.into()}),
        )
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn with_fault(mut self, fault: FaultKind) -> Reply {
        self.fault = Some(fault);
        self
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = match &self.body {
            Some(value) => Bytes::from(value.to_string()),
            None => Bytes::new(),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = hyper::StatusCode::from_u16(self.status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if self.body.is_some() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=UTF-8"),
            );
        }
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
        response
    }
}
