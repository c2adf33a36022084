//! PATCH bodies: JSON merge patch (RFC 7386; strategic merge patch of core kinds is treated as
//! a merge patch) and JSON patch (RFC 6902) with the apiserver's quirk that `test` of a missing
//! path against `null` succeeds, which kube-runtime's `finalizer()` helper relies on when it
//! adds the first finalizer.

use json_patch::PatchOperation;
use serde_json::Value;

use crate::error::ApiError;

/// Which PATCH flavour a Content-Type selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchKind {
    pub(crate) fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// RFC 7386 merge patch.
pub(crate) fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// RFC 6902 JSON patch, atomically (on a copy), with the missing-path `test: null` quirk.
pub(crate) fn json_patch(target: &Value, ops: &Value) -> Result<Value, ApiError> {
    let ops: Vec<PatchOperation> = serde_json::from_value(ops.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut doc = target.clone();
    for op in &ops {
        if let PatchOperation::Test(t) = op
            && t.value.is_null()
            && doc.pointer(t.path.as_str()).is_none_or(Value::is_null)
        {
            continue;
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::{json_patch, merge_patch};
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let out = merge_patch(
            &json!({"a": 1, "b": {"c": 2}}),
            &json!({"a": null, "b": {"d": 3}}),
        );
        assert_eq!(out, json!({"b": {"c": 2, "d": 3}}));
    }

    #[test]
    fn json_patch_test_null_on_missing_path_succeeds() {
        let out = json_patch(
            &json!({"metadata": {}}),
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["x"]}}));
        let err = json_patch(
            &json!({"metadata": {"finalizers": ["y"]}}),
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "x"}]),
        );
        assert!(err.is_err());
    }
}
