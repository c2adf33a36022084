//! The live table: watches SkillAccountLinkings, SkillEnablements and events.k8s.io Events through
//! the API server (kube watchers, the same streams `kubectl get -w` uses) and prints a row the
//! moment an object's NAME / SKILL / STAGE / MODE / READY / REASON changes, plus every Event the
//! operator records. The demo steps wait on the same state, so what they check is what was
//! printed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use futures::{Stream, StreamExt};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::out;

/// One object as `kubectl get` would show it, plus what the demo prints under the row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    /// `sal/<name>` or `sen/<name>`.
    pub name: String,
    pub skill: String,
    pub stage: String,
    pub mode: String,
    pub ready: String,
    pub reason: String,
    /// The Ready condition's message.
    pub message: String,
    /// Whether the Stalled condition is True (a human must act).
    pub stalled: bool,
    /// What is worth knowing once Ready (redirect URLs, the customer's link status).
    pub details: Vec<String>,
}

impl Row {
    fn columns(&self) -> [&str; 6] {
        [
            &self.name,
            &self.skill,
            &self.stage,
            &self.mode,
            &self.ready,
            &self.reason,
        ]
    }

    /// Whether the Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.ready == "True"
    }
}

/// One Event the operator recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// `sal/<name>` or `sen/<name>` of the object the event is about.
    pub object: String,
    pub type_: String,
    pub reason: String,
    pub note: String,
}

/// What the watchers have seen so far.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rows: BTreeMap<String, Row>,
    pub events: Vec<EventLine>,
    /// Which watchers (SkillAccountLinking, SkillEnablement, Event) finished their initial list.
    listed: [bool; 3],
}

impl Snapshot {
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.get(name)
    }

    pub fn ready(&self, name: &str) -> bool {
        self.row(name).is_some_and(Row::is_ready)
    }

    pub fn has_event(&self, object: &str, reason: &str) -> bool {
        self.events
            .iter()
            .any(|e| e.object == object && e.reason == reason)
    }

    /// The table as it stands, for error messages.
    pub fn table(&self) -> String {
        let mut text = header();
        for row in self.rows.values() {
            text.push('\n');
            text.push_str(&format_row(row));
            if !row.message.is_empty() {
                text.push_str(&format!("\n          {}", row.message));
            }
        }
        text
    }
}

/// Handle on the watchers; dropping it does not stop them, [`View::stop`] does.
pub struct View {
    state: watch::Receiver<Snapshot>,
    task: JoinHandle<()>,
}

enum Update {
    Sal(watcher::Event<SkillAccountLinking>),
    Sen(watcher::Event<SkillEnablement>),
    Event(watcher::Event<Event>),
}

impl View {
    /// Starts watching `namespace` and returns once the initial lists are done, so every
    /// change made afterwards is seen as it happens (an object created before the watch began
    /// would first show up in whatever state it has reached by then).
    pub async fn start(client: kube::Client, namespace: &str) -> Result<View, String> {
        let config = watcher::Config::default();
        let sal = watcher(Api::namespaced(client.clone(), namespace), config.clone())
            .default_backoff()
            .filter_map(|e| async move { e.ok().map(Update::Sal) })
            .boxed();
        let sen = watcher(Api::namespaced(client.clone(), namespace), config.clone())
            .default_backoff()
            .filter_map(|e| async move { e.ok().map(Update::Sen) })
            .boxed();
        let events = watcher(Api::<Event>::namespaced(client, namespace), config)
            .default_backoff()
            .filter_map(|e| async move { e.ok().map(Update::Event) })
            .boxed();
        let (tx, rx) = watch::channel(Snapshot::default());
        let task = tokio::spawn(run(futures::stream::select_all([sal, sen, events]), tx));
        let view = View { state: rx, task };
        view.wait_for(
            "the watches of the API server to start",
            Duration::from_secs(30),
            |s| s.listed.iter().all(|listed| *listed),
        )
        .await?;
        Ok(view)
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        self.state.borrow().clone()
    }

    /// Waits until `done` holds for what the watchers have seen, at most `timeout`. On timeout
    /// the error names `what` and shows the table, so a failing run says where it stuck.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, String> {
        let mut rx = self.state.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|s| done(s))).await {
            Ok(Ok(snapshot)) => Ok(snapshot.clone()),
            Ok(Err(_)) => Err(format!("the watchers stopped while waiting for {what}")),
            Err(_) => Err(format!(
                "timed out after {}s waiting for {what}; objects now:\n{}",
                timeout.as_secs(),
                self.snapshot().table()
            )),
        }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn run(mut updates: impl Stream<Item = Update> + Unpin, tx: watch::Sender<Snapshot>) {
    // Rows as last printed, to print only changes (a status write, e.g. a new ETag, can change
    // nothing a user sees in `kubectl get`).
    let mut printed: HashMap<String, Row> = HashMap::new();
    let mut seen_events: HashSet<String> = HashSet::new();
    while let Some(update) = updates.next().await {
        match update {
            Update::Sal(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                show(&tx, &mut printed, sal_row(&o));
            }
            Update::Sen(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                show(&tx, &mut printed, sen_row(&o));
            }
            Update::Sal(watcher::Event::Delete(o)) => {
                gone(&tx, &mut printed, format!("sal/{}", o.name_any()))
            }
            Update::Sen(watcher::Event::Delete(o)) => {
                gone(&tx, &mut printed, format!("sen/{}", o.name_any()))
            }
            Update::Event(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                // A re-list after a watch restart replays old events; print each once.
                let id = e.uid().unwrap_or_else(|| e.name_any());
                if seen_events.insert(id) {
                    record_event(&tx, &e);
                }
            }
            Update::Sal(watcher::Event::InitDone) => tx.send_modify(|s| s.listed[0] = true),
            Update::Sen(watcher::Event::InitDone) => tx.send_modify(|s| s.listed[1] = true),
            Update::Event(watcher::Event::InitDone) => tx.send_modify(|s| s.listed[2] = true),
            _ => {}
        }
    }
}

fn show(tx: &watch::Sender<Snapshot>, printed: &mut HashMap<String, Row>, row: Row) {
    let before = printed.get(&row.name);
    let changed = before.is_none_or(|b| b.columns() != row.columns());
    let stalled_news = row.stalled && before.is_none_or(|b| !b.stalled || b.message != row.message);
    let became_ready = row.is_ready() && before.is_none_or(|b| !b.is_ready());
    if changed {
        if out::take_header() {
            out::line(header());
        }
        out::line(format_row(&row));
    }
    if stalled_news {
        out::line(format!("          Stalled: {}", row.message));
    }
    if became_ready {
        for detail in &row.details {
            out::line(format!("          {detail}"));
        }
    }
    printed.insert(row.name.clone(), row.clone());
    tx.send_modify(|s| {
        s.rows.insert(row.name.clone(), row);
    });
}

fn gone(tx: &watch::Sender<Snapshot>, printed: &mut HashMap<String, Row>, name: String) {
    out::line(format!("{name} deleted"));
    printed.remove(&name);
    tx.send_modify(|s| {
        s.rows.remove(&name);
    });
}

fn record_event(tx: &watch::Sender<Snapshot>, e: &Event) {
    let regarding = e.regarding.as_ref();
    let short = match regarding.and_then(|r| r.kind.as_deref()) {
        Some("SkillAccountLinking") => "sal",
        Some("SkillEnablement") => "sen",
        Some(other) => other,
        None => "?",
    };
    let name = regarding.and_then(|r| r.name.as_deref()).unwrap_or("?");
    let line = EventLine {
        object: format!("{short}/{name}"),
        type_: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        note: e.note.clone().unwrap_or_default(),
    };
    out::line(format!(
        "          event {} {} {}: {}",
        line.object, line.type_, line.reason, line.note
    ));
    tx.send_modify(|s| s.events.push(line));
}

const WIDTHS: [usize; 5] = [32, 24, 13, 9, 6];

fn header() -> String {
    format_columns(["NAME", "SKILL", "STAGE", "MODE", "READY", "REASON"])
}

fn format_row(row: &Row) -> String {
    format_columns(row.columns())
}

fn format_columns(cols: [&str; 6]) -> String {
    let mut text = String::new();
    for (col, width) in cols.iter().zip(WIDTHS) {
        text.push_str(&format!("{col:<width$} "));
    }
    text.push_str(cols[5]);
    text
}

/// `amzn1.ask.skill.00000000-0000-0000-0000-000000000001` → `amzn1.ask.skill...0001`: the
/// sandbox skills differ only in their last digits and the full id would double the line width.
fn short_skill(id: &str) -> String {
    match id.strip_prefix("amzn1.ask.skill.") {
        Some(rest) if rest.len() > 8 => {
            let tail: String = rest
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("amzn1.ask.skill...{tail}")
        }
        _ => id.to_string(),
    }
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// READY, REASON, message and Stalled, or dashes before the operator has written a status.
fn conditions_columns(conditions: &[Condition]) -> (String, String, String, bool) {
    let stalled = condition(conditions, "Stalled").is_some_and(|c| c.status == "True");
    match condition(conditions, "Ready") {
        Some(c) => (
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            stalled,
        ),
        None => ("-".into(), "-".into(), String::new(), stalled),
    }
}

/// An enum as the CRD spells it (`development`, `Owner`).
fn json_str(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn sal_row(o: &SkillAccountLinking) -> Row {
    let status = o.status.clone().unwrap_or_default();
    let (ready, reason, message, stalled) = conditions_columns(&status.conditions);
    let mut details = Vec::new();
    if !status.redirect_urls.is_empty() {
        details.push(format!(
            "redirect URLs (allow these in your OAuth server): {}",
            status.redirect_urls.join(", ")
        ));
    }
    Row {
        name: format!("sal/{}", o.name_any()),
        skill: short_skill(&o.spec.skill_id),
        stage: json_str(o.spec.stage),
        mode: "-".into(),
        ready,
        reason,
        message,
        stalled,
        details,
    }
}

fn sen_row(o: &SkillEnablement) -> Row {
    let status = o.status.clone().unwrap_or_default();
    let (ready, reason, message, stalled) = conditions_columns(&status.conditions);
    let mut details = Vec::new();
    if let Some(user) = &status.user_id {
        details.push(format!(
            "customer {user}: account link {}, enablement {}, answered by {}",
            status.account_link_status.as_deref().unwrap_or("?"),
            status.enablement_status.as_deref().unwrap_or("?"),
            status.endpoint.as_deref().unwrap_or("?"),
        ));
    } else if status.enabled == Some(true) {
        details.push("enabled for the skill owner's developer account".into());
    }
    Row {
        name: format!("sen/{}", o.name_any()),
        skill: short_skill(&o.spec.skill_id),
        stage: json_str(o.spec.stage),
        mode: status.mode.map(json_str).unwrap_or_else(|| "-".into()),
        ready,
        reason,
        message,
        stalled,
        details,
    }
}
