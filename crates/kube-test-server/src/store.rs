//! Object storage, the global resourceVersion counter and the bounded watch history.
//!
//! Objects are indexed by (resource, namespace, name) in ordered maps, so gets and writes are
//! O(log n) and namespaced lists/continue tokens are range scans; every committed write is
//! appended to a bounded history (for watch replay from a resourceVersion) and broadcast to
//! open watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::TypeKey;

/// Default number of watch events kept for replay.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 100_000;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed write, as delivered to watches.
#[derive(Debug)]
pub(crate) struct WatchRecord {
    pub rv: u64,
    pub key: TypeKey,
    pub namespace: String,
    pub event: EventType,
    /// The object as stored by this write (for DELETED: the last state, with the delete's rv).
    pub object: Arc<Value>,
    /// For MODIFIED: the object before this write (selector transitions in watches).
    pub prev: Option<Arc<Value>>,
    /// The serialized watch line, built once and shared by every watcher (fan-out cost).
    line: std::sync::OnceLock<bytes::Bytes>,
}

impl WatchRecord {
    /// `{"type":..,"object":..}\n` for this event.
    pub(crate) fn line(&self) -> bytes::Bytes {
        self.line
            .get_or_init(|| {
                let obj = serde_json::to_string(&*self.object).unwrap_or_else(|_| "{}".into());
                bytes::Bytes::from(format!(
                    "{{\"type\":\"{}\",\"object\":{obj}}}\n",
                    self.event.as_str()
                ))
            })
            .clone()
    }
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

/// Stored objects in (namespace, name) order, shared.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = (&'a (String, String), &'a Arc<Value>)> + 'a>;

/// Everything behind the server's one write lock.
pub(crate) struct State {
    /// Last issued resourceVersion.
    pub rv: u64,
    objects: HashMap<TypeKey, Objects>,
    history: VecDeque<Arc<WatchRecord>>,
    /// Watches from a resourceVersion below this get 410 Expired.
    pub min_valid_rv: u64,
    history_limit: usize,
    tx: broadcast::Sender<Arc<WatchRecord>>,
}

impl State {
    pub(crate) fn new(tx: broadcast::Sender<Arc<WatchRecord>>, history_limit: usize) -> Self {
        State {
            rv: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            min_valid_rv: 0,
            history_limit,
            tx,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<WatchRecord>> {
        self.tx.subscribe()
    }

    pub(crate) fn get(&self, key: &TypeKey, ns: &str, name: &str) -> Option<&Value> {
        self.get_arc(key, ns, name).map(|a| &**a)
    }

    /// The stored object, shared (lists hand it out without copying it).
    pub(crate) fn get_arc(&self, key: &TypeKey, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of one resource, optionally in one namespace, in (namespace, name) order,
    /// starting strictly after `after`.
    pub(crate) fn range<'a>(
        &'a self,
        key: &TypeKey,
        ns: Option<&'a str>,
        after: Option<(String, String)>,
    ) -> Entries<'a> {
        let Some(objs) = self.objects.get(key) else {
            return Box::new(std::iter::empty());
        };
        let start = match (&after, ns) {
            (Some(a), _) => std::ops::Bound::Excluded(a.clone()),
            (None, Some(n)) => std::ops::Bound::Included((n.to_string(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let it = objs.range((start, std::ops::Bound::Unbounded));
        match ns {
            Some(n) => Box::new(it.take_while(move |((o, _), _)| o == n)),
            None => Box::new(it),
        }
    }

    /// Whether any namespaced object lives in namespace `ns`.
    pub(crate) fn holds_objects_in(&self, ns: &str) -> bool {
        let from = (ns.to_string(), String::new());
        !ns.is_empty()
            && self.objects.values().any(|objs| {
                objs.range(from.clone()..)
                    .next()
                    .is_some_and(|((n, _), _)| n == ns)
            })
    }

    /// Store (or, for `Deleted`, remove) an object under a new resourceVersion, record it in
    /// the history and notify watches. Returns the object as stored.
    pub(crate) fn commit(
        &mut self,
        key: &TypeKey,
        ns: &str,
        name: &str,
        event: EventType,
        mut obj: Value,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let obj = Arc::new(obj);
        let objs = self.objects.entry(key.clone()).or_default();
        let k = (ns.to_string(), name.to_string());
        let prev = if event == EventType::Deleted {
            objs.remove(&k);
            None
        } else {
            objs.insert(k, obj.clone())
        };
        let rec = Arc::new(WatchRecord {
            rv,
            key: key.clone(),
            namespace: ns.to_string(),
            event,
            object: obj.clone(),
            prev: if event == EventType::Modified {
                prev
            } else {
                None
            },
            line: std::sync::OnceLock::new(),
        });
        self.history.push_back(rec.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.min_valid_rv = self.min_valid_rv.max(old.rv);
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(rec);
        Value::clone(&obj)
    }

    /// Events after `rv` (exclusive), or `None` if some of them were compacted away.
    pub(crate) fn history_since(&self, rv: u64) -> Option<Vec<Arc<WatchRecord>>> {
        if rv < self.min_valid_rv {
            return None;
        }
        let idx = self.history.partition_point(|r| r.rv <= rv);
        Some(self.history.range(idx..).cloned().collect())
    }

    /// Forget all history: every resourceVersion issued so far becomes too old to watch from.
    /// The counter advances by one so that a fresh list returns a resourceVersion that is
    /// valid to watch from (no relist loop), while every earlier one is expired.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.min_valid_rv = self.rv;
    }

    /// All stored objects, resource by resource.
    pub(crate) fn all(&self) -> Vec<Value> {
        let mut keys: Vec<&TypeKey> = self.objects.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| self.objects.get(k))
            .flat_map(|m| m.values().map(|v| Value::clone(v)))
            .collect()
    }
}
