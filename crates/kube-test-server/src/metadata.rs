//! Metadata-only answers: `meta.k8s.io/v1` (or `v1beta1`) `PartialObjectMetadata` and
//! `PartialObjectMetadataList` for clients whose `Accept` header asks for
//! `application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (client-go's metadata
//! client and metadata informers, kube's `Api<PartialObjectMeta<K>>`).
//!
//! As in the apiserver only `metadata` travels (no `data`, `spec` or `status`); a list keeps its
//! ListMeta (`resourceVersion`, `continue`, `remainingItemCount`). Asking for the list kind on a
//! single object (get, watch) or the object kind on a list is refused with 406 `NotAcceptable`,
//! the apiserver's "you requested PartialObjectMetadataList, but the requested object is not a
//! list".

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::ResourceType;

/// A negotiated metadata-only answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetadataOptions {
    /// `v1` or `v1beta1` (of `meta.k8s.io`).
    pub version: &'static str,
    /// `PartialObjectMetadataList` was asked for (rather than `PartialObjectMetadata`).
    pub list: bool,
}

impl MetadataOptions {
    fn kind(&self) -> &'static str {
        if self.list {
            "PartialObjectMetadataList"
        } else {
            "PartialObjectMetadata"
        }
    }

    pub(crate) fn content_type(&self) -> String {
        format!(
            "application/json;as={};v={};g=meta.k8s.io",
            self.kind(),
            self.version
        )
    }

    fn api_version(&self) -> String {
        format!("meta.k8s.io/{}", self.version)
    }

    /// 406 unless the client asked for the list kind exactly when the answer is a list.
    pub(crate) fn check(&self, rt: &ResourceType, is_list: bool) -> Result<(), ApiError> {
        if self.list == is_list {
            return Ok(());
        }
        // The Go type the apiserver names: typed for built-in kinds, unstructured for CRs.
        let suffix = if is_list { "List" } else { "" };
        let go_type = if rt.custom {
            format!("*unstructured.Unstructured{suffix}")
        } else {
            format!("*{}.{}{suffix}", rt.version, rt.kind)
        };
        let message = if self.list {
            format!(
                "you requested PartialObjectMetadataList, but the requested object is not a list ({go_type})"
            )
        } else {
            format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({go_type})"
            )
        };
        Err(ApiError::new(406, "NotAcceptable", message))
    }

    /// `PartialObjectMetadata` of one object (get, watch events): its metadata only.
    pub(crate) fn object(&self, obj: &Value) -> Value {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": self.api_version(),
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    }

    /// `PartialObjectMetadataList` (as JSON text) of listed objects, with the list's ListMeta;
    /// each item's metadata is written from the stored object, not copied.
    pub(crate) fn list(&self, meta: &Value, items: &[std::sync::Arc<Value>]) -> String {
        #[derive(serde::Serialize)]
        struct Item<'a> {
            kind: &'static str,
            #[serde(rename = "apiVersion")]
            api_version: &'a str,
            metadata: &'a Value,
        }
        #[derive(serde::Serialize)]
        struct List<'a> {
            kind: &'static str,
            #[serde(rename = "apiVersion")]
            api_version: &'a str,
            metadata: &'a Value,
            items: Vec<Item<'a>>,
        }
        let api_version = self.api_version();
        let empty = json!({});
        let list = List {
            kind: "PartialObjectMetadataList",
            api_version: &api_version,
            metadata: meta,
            items: items
                .iter()
                .map(|o| Item {
                    kind: "PartialObjectMetadata",
                    api_version: &api_version,
                    metadata: o.get("metadata").unwrap_or(&empty),
                })
                .collect(),
        };
        serde_json::to_string(&list).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metadata_travels() {
        let m = MetadataOptions {
            version: "v1",
            list: true,
        };
        let list = json!({
            "kind": "SecretList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "7", "continue": "c"},
            "items": [{"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"k": "dg=="}, "type": "Opaque"}]
        });
        let items: Vec<std::sync::Arc<Value>> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(std::sync::Arc::new)
            .collect();
        let l: Value = serde_json::from_str(&m.list(&list["metadata"], &items)).unwrap();
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(l["metadata"], list["metadata"]);
        assert_eq!(
            l["items"][0],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "s"}})
        );
        let secret = ResourceType::builtin("", "v1", "Secret", "secrets", true, &[]);
        assert!(m.check(&secret, true).is_ok());
        let e = m.check(&secret, false).unwrap_err().status_json();
        assert_eq!(e["code"], 406);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .ends_with("is not a list (*v1.Secret)")
        );
    }
}
