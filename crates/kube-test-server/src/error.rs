//! Errors: the crate's own [`Error`] (setup problems) and [`ApiError`], the `Status` body the
//! fake apiserver answers with, shaped like the real one's so clients branch on the same
//! `reason`/`code`.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Why setting up or running the test server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a CRD file or writing a kubeconfig failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A CRD document could not be parsed.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// Where the document came from.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A CRD is structurally unusable (missing group, names, versions, ...).
    #[error("invalid CustomResourceDefinition {name}: {message}")]
    InvalidCrd {
        /// `metadata.name` of the CRD, if any.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// One entry of `details.causes` in an `Invalid` Status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// Message without the field prefix, e.g. `Required value`.
    pub message: String,
    /// Field path such as `spec.skillId`.
    pub field: String,
}

impl Cause {
    pub(crate) fn new(
        reason: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Cause {
            reason,
            message: message.into(),
            field: field.into(),
        }
    }
    /// `spec.x: Invalid value: ...` as in the apiserver's aggregated message.
    pub(crate) fn full(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// A failed API request, answered as a `metav1.Status` with the matching HTTP code.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(rt: &ResourceType, name: &str, kind: &str) -> Value {
    let mut d = json!({ "name": name, "kind": kind });
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{}\" not found", rt.qualified_plural(), name),
            details: Some(details(rt, name, &rt.plural)),
        }
    }

    pub(crate) fn path_not_found(path: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub(crate) fn already_exists(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{}\" already exists", rt.qualified_plural(), name),
            details: Some(details(rt, name, &rt.plural)),
        }
    }

    /// 409 Conflict `Operation cannot be fulfilled on ...: {why}`.
    pub(crate) fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                rt.qualified_plural(),
                name,
                why
            ),
            details: Some(details(rt, name, &rt.plural)),
        }
    }

    /// The optimistic-concurrency failure, with the real apiserver's message.
    pub(crate) fn stale(rt: &ResourceType, name: &str) -> Self {
        ApiError::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with `details.causes`, message `Kind.group "name" is invalid: ...`.
    pub(crate) fn invalid(rt: &ResourceType, name: &str, causes: &[Cause]) -> Self {
        let joined = if causes.len() == 1 {
            causes.iter().map(Cause::full).collect::<String>()
        } else {
            format!(
                "[{}]",
                causes
                    .iter()
                    .map(Cause::full)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut d = details(rt, name, &rt.kind);
        d["causes"] = Value::Array(
            causes
                .iter()
                .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                .collect(),
        );
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!(
                "{} \"{}\" is invalid: {}",
                rt.qualified_kind(),
                name,
                joined
            ),
            details: Some(d),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub(crate) fn unsupported_media(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    pub(crate) fn method_not_allowed(method: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub(crate) fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// The `metav1.Status` body.
    pub(crate) fn status_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.status_json().to_string();
        let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.code == 429 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        resp
    }
}
