//! The resource types the server knows: built-in core kinds and those loaded from CRDs. Each is
//! addressed by (group, version, plural) as in request paths; objects are stored per
//! (group, plural) so every served version of a CRD sees the same objects.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::error::Error;
use crate::schema::CrdSchema;
use crate::table::PrinterColumn;

/// Key under which objects of one resource are stored: `group/plural` (core: `/plural`).
pub(crate) type TypeKey = Arc<str>;

/// One served (group, version, resource).
#[derive(Debug)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (then main writes ignore `.status`).
    pub status_subresource: bool,
    /// Custom resource: PUT needs a resourceVersion, `generation` is maintained, schema enforced.
    pub custom: bool,
    pub schema: Option<Arc<CrdSchema>>,
    /// Columns of Table answers (custom resources; built-in kinds have fixed ones).
    pub printer_columns: Vec<PrinterColumn>,
    /// Storage key: `group/plural`, except that both Event APIs share `/events`.
    pub key: TypeKey,
}

impl ResourceType {
    pub(crate) fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            status_subresource: kind == "Namespace",
            custom: false,
            schema: None,
            printer_columns: Vec::new(),
            // One object behind both Event APIs, as in a cluster (see `events.rs`).
            key: if kind == "Event" && group == "events.k8s.io" {
                Arc::from(format!("/{plural}"))
            } else {
                Arc::from(format!("{group}/{plural}"))
            },
        }
    }

    /// `v1` or `group/version`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `skillaccountlinkings.alexa.operator.dev`, as in NotFound messages.
    pub(crate) fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Secret` or `SkillAccountLinking.alexa.operator.dev`, as in Invalid messages.
    pub(crate) fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub(crate) fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Generation is maintained for custom resources (core kinds used here have none).
    pub(crate) fn has_generation(&self) -> bool {
        self.custom
    }
}

/// All served resources.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_gvr: HashMap<(String, String, String), Arc<ResourceType>>,
    /// In registration order, for discovery.
    pub ordered: Vec<Arc<ResourceType>>,
}

impl Registry {
    pub(crate) fn with_builtins() -> Self {
        let mut r = Registry::default();
        for rt in [
            ResourceType::builtin("", "v1", "Namespace", "namespaces", false, &["ns"]),
            ResourceType::builtin("", "v1", "Secret", "secrets", true, &[]),
            ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
            ResourceType::builtin("", "v1", "Event", "events", true, &["ev"]),
            ResourceType::builtin("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
            ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
            ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
        ] {
            r.insert(rt);
        }
        r
    }

    fn insert(&mut self, rt: ResourceType) {
        let rt = Arc::new(rt);
        let key = (rt.group.clone(), rt.version.clone(), rt.plural.clone());
        if let Some(old) = self.by_gvr.insert(key, rt.clone()) {
            self.ordered.retain(|o| !Arc::ptr_eq(o, &old));
        }
        self.ordered.push(rt);
    }

    pub(crate) fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Find by apiVersion and plural (the public hooks' addressing).
    pub(crate) fn by_api_version(
        &self,
        api_version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        let (g, v) = split_api_version(api_version);
        self.get(g, v, plural)
    }

    /// Register every served version of a CRD (JSON form of `apiextensions.k8s.io/v1`).
    pub(crate) fn add_crd(&mut self, crd: &Value) -> Result<(), Error> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let bad = |m: &str| Error::InvalidCrd {
            name: name.clone(),
            message: m.to_string(),
        };
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err(bad("kind is not CustomResourceDefinition"));
        }
        let spec = crd.get("spec").ok_or_else(|| bad("missing spec"))?;
        let s = |p: &str| spec.pointer(p).and_then(Value::as_str).map(str::to_string);
        let group = s("/group").ok_or_else(|| bad("missing spec.group"))?;
        let kind = s("/names/kind").ok_or_else(|| bad("missing spec.names.kind"))?;
        let plural = s("/names/plural").ok_or_else(|| bad("missing spec.names.plural"))?;
        let singular = s("/names/singular").unwrap_or_else(|| kind.to_lowercase());
        let strs = |p: &str| -> Vec<String> {
            spec.pointer(p)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let namespaced = s("/scope").as_deref() != Some("Cluster");
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing spec.versions"))?;
        if versions.is_empty() {
            return Err(bad("spec.versions is empty"));
        }
        for v in versions {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let version = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("version without name"))?;
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .map(|sch| Arc::new(CrdSchema::new(sch.clone())));
            self.insert(ResourceType {
                group: group.clone(),
                version: version.to_string(),
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced,
                short_names: strs("/names/shortNames"),
                categories: strs("/names/categories"),
                status_subresource: v.pointer("/subresources/status").is_some(),
                custom: true,
                schema,
                printer_columns: PrinterColumn::for_version(v),
                key: Arc::from(format!("{group}/{plural}")),
            });
        }
        Ok(())
    }
}

/// `v1` → ("", "v1"); `a.b/v2` → ("a.b", "v2").
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Parse every YAML document in `text` (multi-document streams allowed), skipping empty ones.
pub(crate) fn parse_yaml_docs(text: &str, origin: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Parse {
        path: origin.to_string(),
        message: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Every `*.yaml`/`*.yml`/`*.json` file in `dir`, sorted, parsed into documents.
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<(String, Value)>, Error> {
    let io = |e| Error::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let origin = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| Error::Io {
            path: origin.clone(),
            source: e,
        })?;
        for d in parse_yaml_docs(&text, &origin)? {
            out.push((origin.clone(), d));
        }
    }
    Ok(out)
}
