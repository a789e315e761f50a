//! Leadership: on a database shared by several replicas, one leads and acts
//! (the controller, probes, hooks, gates, notifier and worker sweeper), the
//! others serve the API, route sets and ingestion.
//!
//! Every replica runs [`lead`]. As a follower it beats (so the cluster can be
//! listed) and asks for the lease every `renew_every`; the database grants it
//! only once the holder's term has lapsed. As the leader it renews every
//! `renew_every`, and **acts only while its own deadline has not passed**:
//! the deadline is the moment it *sent* its last successful renewal plus the
//! term, minus a margin. The database's expiry is that renewal's commit plus
//! the term, which is later, so a leader that can't renew (the database is
//! away, the network is cut) stops acting before anybody else can be granted
//! the lease. A leader that was paused (`SIGSTOP`, a long GC-like stall) can
//! wake up after it was replaced without knowing; every write its loops make
//! goes through a store fenced by its epoch, which the database refuses.
//!
//! The acting loops run in a `JoinSet`: losing the lease drops it, which
//! aborts them at once; a shutdown stops them at a tick boundary first and
//! then hands the lease over (`release_lease`), so a follower takes over
//! within one `renew_every` instead of a whole term.
//!
//! Anchors: Argo Rollouts' lease is 15 s (renew 10 s, retry 2 s) and a
//! failover waits for expiry; Flagger's is 60 s. Serin's defaults: a 3 s term,
//! renewed every 500 ms, acting until 1 s before the term could end.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_core::event::{EventType, NewEvent};
use serin_store::lease::ReplicaInfo;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::App;

/// How long a lease lasts and how it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// How long a grant or renewal lasts on the database's clock.
    pub term: Duration,
    /// How often the leader renews and a follower asks.
    pub renew_every: Duration,
    /// How long before its term could end the leader stops acting.
    pub margin: Duration,
}

impl Default for LeaseTerms {
    fn default() -> Self {
        LeaseTerms {
            term: Duration::from_secs(3),
            renew_every: Duration::from_millis(500),
            margin: Duration::from_secs(1),
        }
    }
}

/// What this replica knows of itself and of its leadership.
#[derive(Debug, Clone)]
pub struct Leadership {
    me: ReplicaInfo,
    state: Arc<Mutex<Held>>,
    /// Replicas heard from lately (1 until known), for limits they share.
    replicas: Arc<AtomicU32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    epoch: Option<i64>,
    renewed: Option<std::time::Instant>,
    changes: u64,
}

impl Leadership {
    /// This replica, named `name`, started now.
    pub fn new(name: &str, now: serin_core::Timestamp) -> Leadership {
        Leadership {
            me: ReplicaInfo {
                id: format!("replica_{}", uuid::Uuid::new_v4().simple()),
                name: name.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: now,
                seen_at: now,
            },
            state: Arc::default(),
            replicas: Arc::new(AtomicU32::new(1)),
        }
    }

    /// How many replicas serve the cluster (heard from in the last 30 s; 1
    /// until known), kept fresh by [`lead`]: what rate limits divide by.
    pub fn live_replicas(&self) -> Arc<AtomicU32> {
        self.replicas.clone()
    }

    /// This replica as the cluster lists it.
    pub fn me(&self) -> &ReplicaInfo {
        &self.me
    }

    /// The epoch this replica leads at, if it leads.
    pub fn epoch(&self) -> Option<i64> {
        self.state.lock().expect("leadership lock").epoch
    }

    /// Time since this replica last renewed its lease, if it leads.
    pub fn lease_age(&self) -> Option<Duration> {
        let s = self.state.lock().expect("leadership lock");
        s.epoch.and(s.renewed).map(|t| t.elapsed())
    }

    /// How many times this replica has gained or lost the lease.
    pub fn changes(&self) -> u64 {
        self.state.lock().expect("leadership lock").changes
    }

    fn set(&self, epoch: Option<i64>) {
        let mut s = self.state.lock().expect("leadership lock");
        if s.epoch != epoch {
            s.changes += 1;
        }
        s.epoch = epoch;
        s.renewed = epoch.map(|_| std::time::Instant::now());
    }

    fn renewed(&self) {
        self.state.lock().expect("leadership lock").renewed = Some(std::time::Instant::now());
    }
}

/// A leader's term, as the tasks its services spawn see it: ending it aborts
/// every task spawned through it that is still running. Outside a term
/// (the API's services) tasks are spawned untracked.
#[derive(Debug, Clone, Default)]
pub struct Term(Option<Arc<Mutex<TermTasks>>>);

#[derive(Debug, Default)]
struct TermTasks {
    id: u64,
    ended: bool,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Term {
    /// A new term.
    pub fn begin() -> Term {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Term(Some(Arc::new(Mutex::new(TermTasks {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            ..TermTasks::default()
        }))))
    }

    /// This term's id, unique in the process (0 outside a term).
    pub fn id(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |t| t.lock().expect("term lock").id)
    }

    /// Spawns `fut`, to be aborted when the term ends (at once if it has).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = tokio::spawn(fut);
        if let Some(t) = &self.0 {
            let mut t = t.lock().expect("term lock");
            if t.ended {
                task.abort();
            } else {
                t.tasks.retain(|h| !h.is_finished());
                t.tasks.push(task.abort_handle());
            }
        }
        task
    }

    /// Ends the term: aborts what its tasks still run.
    pub fn end(&self) {
        if let Some(t) = &self.0 {
            let mut t = t.lock().expect("term lock");
            t.ended = true;
            for h in t.tasks.drain(..) {
                h.abort();
            }
        }
    }
}

/// The acting loops of one term. Dropping it aborts them and everything
/// they spawned.
struct Acting {
    halt: watch::Sender<bool>,
    tasks: JoinSet<()>,
    term: Term,
    memory: crate::controller::ControllerMemory,
}

impl Drop for Acting {
    fn drop(&mut self) {
        self.tasks.abort_all();
        self.term.end();
        self.memory.forget_term();
    }
}

impl Acting {
    fn start(app: &App) -> Acting {
        let (halt, halted) = watch::channel(false);
        let stopping = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::controller::run(
            app.clone(),
            app.config.controller_interval,
            stopping(halted.clone()),
        ));
        tasks.spawn(crate::probe::run(app.clone(), stopping(halted.clone())));
        tasks.spawn(crate::notifier::run(app.clone(), stopping(halted.clone())));
        tasks.spawn(crate::runtime::sweep_workers(app.clone(), stopping(halted)));
        Acting {
            halt,
            tasks,
            term: app.term.clone(),
            memory: app.controller.clone(),
        }
    }

    /// Stops the loops at a tick boundary and waits for them (then the
    /// term's tasks are aborted as it drops).
    async fn stop(mut self) {
        let _ = self.halt.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Keeps, loses and retakes the lease until `halt` turns true; acts while
/// it holds it. On halt, stops acting and hands the lease over.
pub async fn lead(app: App, terms: LeaseTerms, mut halt: watch::Receiver<bool>) {
    let me = app.leadership.me().clone();
    loop {
        let Some((epoch, asked)) = follow(&app, &me, terms, &mut halt).await else {
            return;
        };
        let mut valid_until = asked + terms.term.saturating_sub(terms.margin);
        let fenced = app.fenced(epoch);
        app.leadership.set(Some(epoch));
        tracing::info!(epoch, replica = %me.name, "this replica leads");
        if app.store.backend() == "postgres" {
            let _ = tokio::time::timeout(terms.renew_every, announce(&fenced, &me, epoch)).await;
        }
        let acting = Acting::start(&fenced);
        let lost = loop {
            tokio::select! {
                () = tokio::time::sleep(terms.renew_every) => {}
                () = tokio::time::sleep_until(valid_until) => break true,
                _ = halt.wait_for(|stop| *stop) => break false,
            }
            match renew(&app, &me, epoch, terms, valid_until).await {
                Renewal::Until(t) => {
                    valid_until = t;
                    app.leadership.renewed();
                }
                Renewal::Lost => break true,
                Renewal::Failed if Instant::now() >= valid_until => break true,
                Renewal::Failed => {}
            }
            // Bounded, so nothing but the renewal decides how long we act.
            let _ = tokio::time::timeout(terms.renew_every, beat(&app, &me)).await;
        };
        app.leadership.set(None);
        if lost {
            drop(acting);
            tracing::warn!(epoch, "lost the leader lease; stopped acting");
            continue;
        }
        // The loops stop at a tick boundary (a notification being sent is
        // let finish) while the lease is still renewed; if the lease is
        // lost meanwhile, they are aborted with everything they started.
        let stopping = acting.stop();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => break,
                () = tokio::time::sleep_until(valid_until) => {
                    tracing::warn!(epoch, "the lease ran out while the acting loops stopped; aborted");
                    break;
                }
                () = tokio::time::sleep(terms.renew_every) => {
                    if let Renewal::Until(t) = renew(&app, &me, epoch, terms, valid_until).await {
                        valid_until = t;
                    }
                }
            }
        }
        if let Err(e) = app.store.release_lease(&me.id, epoch).await {
            tracing::warn!(error = %e, "cannot hand the leader lease over; it lapses by itself");
        }
        return;
    }
}

/// What one renewal came to.
enum Renewal {
    /// Renewed: acting may go on until this instant.
    Until(Instant),
    /// Refused (the lease lapsed or another replica holds it), or no answer
    /// before the acting deadline.
    Lost,
    /// An error before the deadline: the deadline stands.
    Failed,
}

/// Renews the lease at `epoch`, waiting no longer than the acting deadline
/// `valid_until`. The new deadline counts from when the renewal was sent.
async fn renew(
    app: &App,
    me: &ReplicaInfo,
    epoch: i64,
    terms: LeaseTerms,
    valid_until: Instant,
) -> Renewal {
    let sent = Instant::now();
    let left = valid_until.saturating_duration_since(sent);
    match tokio::time::timeout(left, app.store.renew_lease(&me.id, epoch, terms.term)).await {
        Ok(Ok(true)) => Renewal::Until(sent + terms.term.saturating_sub(terms.margin)),
        Ok(Ok(false)) | Err(_) => Renewal::Lost,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot renew the leader lease");
            Renewal::Failed
        }
    }
}

/// Follows until granted the lease: its epoch and when it was asked for;
/// `None` on halt.
async fn follow(
    app: &App,
    me: &ReplicaInfo,
    terms: LeaseTerms,
    halt: &mut watch::Receiver<bool>,
) -> Option<(i64, Instant)> {
    loop {
        if *halt.borrow() {
            return None;
        }
        let _ = tokio::time::timeout(terms.renew_every, beat(app, me)).await;
        let asked = Instant::now();
        match tokio::time::timeout(terms.term, app.store.acquire_lease(&me.id, terms.term)).await {
            Ok(Ok(Some(epoch))) => return Some((epoch, asked)),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot ask for the leader lease"),
            Err(_) => tracing::warn!("asking for the leader lease timed out"),
        }
        tokio::select! {
            () = tokio::time::sleep(terms.renew_every) => {}
            _ = halt.wait_for(|stop| *stop) => return None,
        }
    }
}

/// Records this replica's beat, counts the live replicas and measures the
/// local clock against the database's.
async fn beat(app: &App, me: &ReplicaInfo) {
    if app.store.backend() == "postgres" {
        measure_clock(app).await;
    }
    if let Err(e) = app.store.beat_replica(me).await {
        tracing::debug!(error = %e, "cannot record this replica's beat");
        return;
    }
    match app.store.replicas(LIVE_WITHIN).await {
        Ok(list) => {
            let n = u32::try_from(list.len()).unwrap_or(u32::MAX).max(1);
            app.leadership.replicas.store(n, Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(error = %e, "cannot count the replicas"),
    }
}

/// A reading of the database's clock is kept only when its round trip took
/// less than this: the offset is then right to within half of it.
const CLOCK_READING: Duration = Duration::from_millis(50);

/// How far off the database's clock this replica may be before it says so.
const CLOCK_WARN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Reads the database's clock and sets `app`'s offset to it (the middle of
/// the round trip against the database's reading), so that `app.now()`
/// follows the database's clock. Every replica does it at every beat: claims
/// of outside calls and notifications lapse, pauses end and backoffs run
/// out at the same moment whichever replica looks, even when the hosts'
/// clocks disagree. Returns the offset set, if any.
pub async fn measure_clock(app: &App) -> Option<chrono::TimeDelta> {
    let sent = std::time::Instant::now();
    let before = app.local_now();
    let db = app.store.database_time().await;
    let took = sent.elapsed();
    let Ok(db) = db else { return None };
    // A reading's error is at most half its round trip: a slow one replaces
    // a faster one only once that is a minute old (clocks drift), and one
    // over a second is never kept.
    let better = match app.clock_reading() {
        None => true,
        Some((rtt, age)) => took <= rtt || age > Duration::from_secs(60),
    };
    if took > Duration::from_secs(1) || (took > CLOCK_READING && !better) {
        return None;
    }
    let middle = before + chrono::TimeDelta::from_std(took / 2).unwrap_or_default();
    let offset = db - middle;
    let was = app.clock_offset();
    if !app.set_clock_offset(offset.num_microseconds().unwrap_or(0), took) {
        return None;
    }
    if offset.abs() > CLOCK_WARN && (was - offset).abs() > CLOCK_WARN {
        tracing::warn!(
            offset_ms = offset.num_milliseconds(),
            "this host's clock is off the database's; Serin keeps time by the database's"
        );
    }
    Some(offset)
}

/// A replica counts as live while its last beat is younger than this.
const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// Records the new leader in the audit log, fenced by its epoch.
async fn announce(app: &App, me: &ReplicaInfo, epoch: i64) {
    let event = NewEvent {
        kind: EventType::LeaderElected,
        resource_type: "cluster",
        resource_id: me.id.clone(),
        deployment_id: None,
        message: format!("{} leads the cluster at epoch {epoch}", me.name),
        data: serde_json::json!({"replica": me.id, "name": me.name, "epoch": epoch}),
    };
    match app
        .store
        .append_events(vec![event], "serin", app.now())
        .await
    {
        Ok(events) => app.committed(&events),
        Err(e) => tracing::warn!(error = %e, "cannot record the leader's election"),
    }
}
