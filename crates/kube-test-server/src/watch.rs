//! Watch streams: newline-delimited JSON `{"type","object"}` events over a chunked body.
//!
//! A watch subscribes to the broadcast of committed writes and, under the same lock, takes
//! either the current objects (no resourceVersion, `"0"`, or `sendInitialEvents=true`) or the
//! retained history after the given resourceVersion, so no write is missed or duplicated.
//! A resourceVersion older than the retained history yields an in-stream `ERROR` event with a
//! 410 `Expired` Status (HTTP 200), which is what makes kube's watcher relist.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Inner;
use crate::error::ApiError;
use crate::events;
use crate::ops::Params;
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{EventType, WatchRecord};
use crate::table::{self, Convert};

/// Default watch length when the client gives no `timeoutSeconds` (the apiserver's minimum
/// request timeout is 1800s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    rt: Arc<ResourceType>,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Each event's object is a one-row Table (kubectl get -w) or PartialObjectMetadata
    /// (metadata informers); ERROR events stay Status objects.
    convert: Option<Convert>,
    /// Whether the next Table carries the column definitions (only the first one does, as
    /// with the apiserver).
    headers: bool,
}

impl Filter {
    fn matches_obj(&self, obj: &Value) -> bool {
        let obj = events::view(&self.rt, obj);
        self.labels.matches(&obj) && self.fields.matches(&obj)
    }

    /// The line for `object` (already in the watched version), as a Table or
    /// PartialObjectMetadata when asked for.
    fn render(&mut self, event_type: &str, object: &Value) -> Bytes {
        match self.convert {
            Some(Convert::Table(opts)) => {
                let t = table::table_of_one(&self.rt, object, opts, self.headers);
                self.headers = false;
                line(event_type, &t)
            }
            Some(Convert::Metadata(m)) => line(event_type, &m.object(object)),
            None => line(event_type, object),
        }
    }

    /// The event line, shared across watchers unless the watched version differs from the
    /// stored one or a conversion is asked for.
    fn record_line(&mut self, api_version: &str, rec: &WatchRecord) -> Bytes {
        if self.convert.is_none()
            && rec.object.get("apiVersion").and_then(Value::as_str) == Some(api_version)
        {
            rec.line()
        } else {
            let obj = with_version(&self.rt, &rec.object);
            self.render(rec.event.as_str(), &obj)
        }
    }

    /// The line this watch gets for a write, if any. With selectors, an object that starts
    /// matching arrives as ADDED and one that stops matching as DELETED (its previous state
    /// with the write's resourceVersion), like the apiserver's watch cache.
    fn event_line(&mut self, api_version: &str, rec: &WatchRecord) -> Option<Bytes> {
        if rec.key != self.rt.key || self.ns.as_deref().is_some_and(|n| n != rec.namespace) {
            return None;
        }
        if self.labels.is_empty() && self.fields.is_empty() {
            return Some(self.record_line(api_version, rec));
        }
        let cur = self.matches_obj(&rec.object);
        if rec.event != EventType::Modified {
            return cur.then(|| self.record_line(api_version, rec));
        }
        let old = rec.prev.as_deref().is_some_and(|p| self.matches_obj(p));
        match (cur, old) {
            (true, true) => Some(self.record_line(api_version, rec)),
            (true, false) => {
                let obj = with_version(&self.rt, &rec.object);
                Some(self.render("ADDED", &obj))
            }
            (false, true) => {
                let mut prev = with_version(&self.rt, rec.prev.as_deref().unwrap_or(&Value::Null));
                if let Some(m) = prev.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), json!(rec.rv.to_string()));
                }
                Some(self.render("DELETED", &prev))
            }
            (false, false) => None,
        }
    }
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut s = json!({ "type": event_type, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// A BOOKMARK's object (with a Table or metadata watch it is converted too, like the
/// apiserver).
fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta })
}

fn expired(message: String) -> Bytes {
    line("ERROR", &ApiError::expired(message).status_json())
}

/// The stored object in the watched version (Events converted between the two Event APIs).
fn with_version(rt: &ResourceType, obj: &Value) -> Value {
    let mut o = events::view(rt, obj).into_owned();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
    }
    o
}

/// Start a watch; the response body streams until timeout, `close_watches()`, a lagging
/// receiver (410) or the client going away.
pub(crate) fn watch(
    inner: &Inner,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    params: &Params,
    convert: Option<Convert>,
) -> Result<Response, ApiError> {
    // Events carry single objects: `as=PartialObjectMetadataList` cannot be served (the
    // apiserver fails to convert each event and ends the stream; refused up front here).
    if let Some(Convert::Metadata(m)) = convert {
        m.check(&rt, false)?;
    }
    let filter = Filter {
        labels: LabelSelector::parse(params.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(params.get("fieldSelector").unwrap_or(""))?.for_resource(&rt),
        rt: rt.clone(),
        ns,
        convert,
        headers: true,
    };
    let timeout = match params.get("timeoutSeconds") {
        Some(t) => match t.parse::<u64>() {
            Ok(0) => DEFAULT_TIMEOUT,
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid timeoutSeconds {t:?}"
                )));
            }
        },
        None => DEFAULT_TIMEOUT,
    };
    let bookmarks = params.flag("allowWatchBookmarks");
    let send_initial = params.flag("sendInitialEvents");
    if send_initial {
        if params.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::invalid(
                &rt,
                "",
                &[crate::error::Cause::new(
                    "FieldValueForbidden",
                    "sendInitialEvents",
                    "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and resourceVersionMatch is set to NotOlderThan",
                )],
            ));
        }
        if !bookmarks {
            return Err(ApiError::invalid(
                &rt,
                "",
                &[crate::error::Cause::new(
                    "FieldValueForbidden",
                    "allowWatchBookmarks",
                    "Forbidden: allowWatchBookmarks must be set to true when sendInitialEvents is set",
                )],
            ));
        }
    }
    let rv_param = params.get("resourceVersion");
    let bookmark_interval = inner.bookmark_interval();
    let mut close_rx = inner.closes.subscribe();
    close_rx.mark_unchanged();

    // Snapshot + subscription under one lock.
    let (rx, start_rv, initial, replay, too_old) = {
        let st = inner.state.lock();
        let rx = st.subscribe();
        let start_rv = st.rv;
        let ns = filter.ns.as_deref();
        let snapshot = |st: &crate::store::State| -> Vec<Value> {
            st.range(&rt.key, ns, None)
                .filter(|(_, o)| filter.matches_obj(o))
                .map(|(_, o)| with_version(&rt, o))
                .collect()
        };
        match rv_param {
            _ if send_initial => (rx, start_rv, snapshot(&st), Vec::new(), None),
            None | Some("0") => (rx, start_rv, snapshot(&st), Vec::new(), None),
            Some(v) => {
                let rv: u64 = v
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?;
                match st.history_since(rv) {
                    Some(h) => (rx, start_rv, Vec::new(), h, None),
                    None => (
                        rx,
                        start_rv,
                        Vec::new(),
                        Vec::new(),
                        Some(format!(
                            "too old resource version: {rv} ({})",
                            st.min_valid_rv
                        )),
                    ),
                }
            }
        }
    };

    let (tx, body_rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let _ = run(
            tx,
            rx,
            close_rx,
            filter,
            start_rv,
            initial,
            replay,
            too_old,
            send_initial,
            bookmarks,
            bookmark_interval,
            timeout,
        )
        .await;
    });
    let body = Body::from_stream(ReceiverStream::new(body_rx).map(Ok::<Bytes, Infallible>));
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    tx: mpsc::Sender<Bytes>,
    mut rx: broadcast::Receiver<Arc<WatchRecord>>,
    mut close_rx: tokio::sync::watch::Receiver<u64>,
    mut filter: Filter,
    start_rv: u64,
    initial: Vec<Value>,
    replay: Vec<Arc<WatchRecord>>,
    too_old: Option<String>,
    send_initial: bool,
    bookmarks: bool,
    bookmark_interval: Duration,
    timeout: Duration,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    if let Some(msg) = too_old {
        tx.send(expired(msg)).await?;
        return Ok(());
    }
    let rt = filter.rt.clone();
    let api_version = rt.api_version();
    for o in &initial {
        tx.send(filter.render("ADDED", o)).await?;
    }
    if send_initial {
        tx.send(filter.render("BOOKMARK", &bookmark(&rt, start_rv, true)))
            .await?;
    }
    let mut last_rv = start_rv;
    for rec in &replay {
        if let Some(l) = filter.event_line(&api_version, rec) {
            tx.send(l).await?;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + bookmark_interval,
        bookmark_interval,
    );
    loop {
        tokio::select! {
            biased;
            _ = tx.closed() => return Ok(()),
            _ = close_rx.changed() => return Ok(()),
            _ = &mut deadline => return Ok(()),
            msg = rx.recv() => match msg {
                Ok(rec) => {
                    if rec.rv <= last_rv {
                        continue;
                    }
                    last_rv = rec.rv;
                    if let Some(l) = filter.event_line(&api_version, &rec) {
                        tx.send(l).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    tx.send(expired(format!("too old resource version: {last_rv}"))).await?;
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = ticker.tick(), if bookmarks => {
                let b = filter.render("BOOKMARK", &bookmark(&rt, last_rv, false));
                tx.send(b).await?;
            }
        }
    }
}
