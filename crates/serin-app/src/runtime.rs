//! The runtime: every background task of a control-plane process, started and
//! stopped in one place.
//!
//! `serin up` (and an in-process test) builds an [`App`], starts a
//! [`Runtime`] over it, serves the router, and on shutdown stops both. The
//! runtime owns the leadership task (which runs the controller, the
//! health-check probes, the notifier and the worker sweeper while this
//! replica holds the leader lease: see [`crate::leadership`]) and, when the
//! process has a proxy listener, the embedded proxy with its bridge to the
//! store. [`Runtime::shutdown`] stops the loops
//! at a tick boundary, then lets the embedded proxy finish its requests and
//! stores every lane second it counted (the open one too) before it returns,
//! so a process that exits after it loses no answered request from the lane
//! metrics.
//!
//! Each task started here is joined on shutdown within the grace the caller
//! gives, and aborted past it; so is the route watch's refresher, which the
//! first subscriber starts (a proxy's long poll or the embedded proxy).

use std::time::Duration;

use serin_core::traffic::proxy::ProxyInfo;
use serin_proxy::{Backlog, Proxy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::App;

/// How long past the grace the embedded proxy's bridge may take to store the
/// seconds counted while its last requests drained.
pub const STORE_AFTER_DRAIN: Duration = Duration::from_secs(5);

/// Most lane seconds the embedded proxy's bridge keeps while the store is away.
const BRIDGE_CAPACITY: usize = 100_000;

/// The background tasks of one control-plane process.
#[derive(Debug)]
pub struct Runtime {
    halt: watch::Sender<bool>,
    loops: Vec<(&'static str, JoinHandle<()>)>,
    proxy: Option<JoinHandle<()>>,
    routes: crate::routewatch::RouteWatch,
}

impl Runtime {
    /// Starts every background task over `state`; with `proxy_listener` (and
    /// a proxy in `state`), the embedded proxy serves it, following the route
    /// watch and storing its lane seconds.
    pub async fn start(state: &App, proxy_listener: Option<TcpListener>) -> Runtime {
        let (halt, halted) = watch::channel(false);
        let stopping = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut loops = vec![(
            "leadership",
            tokio::spawn(crate::leadership::lead(
                state.clone(),
                state.config.lease,
                halted.clone(),
            )),
        )];
        if state.store.backend() == "postgres" {
            loops.push((
                "event feed",
                tokio::spawn(crate::feed::follow(state.clone(), stopping(halted.clone()))),
            ));
        }
        let proxy = match (proxy_listener, state.proxy.clone()) {
            (Some(l), Some(p)) => Some(embedded_proxy(state, l, p, stopping(halted)).await),
            _ => None,
        };
        Runtime {
            halt,
            loops,
            proxy,
            routes: state.routes.clone(),
        }
    }

    /// Ends every task at once, as a crash would: nothing is drained or
    /// stored and the leader lease is not handed over (it lapses by its
    /// term). For tests of what the other replicas do then.
    pub fn abort(self) {
        for (_, task) in &self.loops {
            task.abort();
        }
        if let Some(p) = &self.proxy {
            p.abort();
        }
        if let Some(t) = self.routes.stop() {
            t.abort();
        }
    }

    /// Stops the loops and the embedded proxy together; returns when all
    /// have ended or `grace` has passed, then aborts what is left. The proxy
    /// lets its requests run for up to 30 s (its own drain), and gets
    /// [`STORE_AFTER_DRAIN`] beyond `grace` to store its last seconds.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.halt.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let proxy = async {
            if let Some(p) = self.proxy {
                let abort = p.abort_handle();
                if tokio::time::timeout_at(deadline + STORE_AFTER_DRAIN, p)
                    .await
                    .is_err()
                {
                    abort.abort();
                    tracing::warn!(
                        "the embedded proxy's requests or lane seconds outlived the grace period"
                    );
                }
            }
        };
        let routes = self.routes;
        let loops = async {
            let watch = routes.stop().map(|t| ("route watch", t));
            for (name, task) in self.loops.into_iter().chain(watch) {
                let abort = task.abort_handle();
                if tokio::time::timeout_at(deadline, task).await.is_err() {
                    abort.abort();
                    tracing::warn!(
                        task = name,
                        "a background task outlived the grace period; stopped"
                    );
                }
            }
        };
        tokio::join!(proxy, loops);
    }
}

/// Marks workers whose heartbeats stopped as unreachable, a few times per timeout.
pub(crate) async fn sweep_workers(state: App, shutdown: impl Future<Output = ()>) {
    let timeout = state.config.worker_timeout;
    let every = (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
    let mut tick = tokio::time::interval(every);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => return,
        }
        let limit = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::seconds(60));
        match state.store.mark_unreachable(state.now(), limit).await {
            Ok(events) => state.committed(&events),
            Err(e) => tracing::warn!(error = %e, "cannot check worker heartbeats"),
        }
    }
}

/// The embedded proxy: routes from this process's route watch (changes apply
/// at once), lane seconds written straight to the store. The task ends after
/// `shutdown`, once the proxy has finished its requests and every second it
/// counted is stored.
async fn embedded_proxy(
    state: &App,
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    // The first load retries until the database answers; meanwhile the proxy
    // has no routes (it is starting).
    let mut rx = loop {
        match state.routes.subscribe(&state.store, &state.hub).await {
            Ok(rx) => break rx,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the route set yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    proxy.apply_routes(&rx.borrow_and_update(), "control plane");
    let p = proxy.clone();
    let follow = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let set = rx.borrow_and_update().clone();
            p.apply_routes(&set, "control plane");
        }
    });
    let id = format!("embedded-{}", uuid::Uuid::new_v4().simple());
    let (stop, stopped) = watch::channel(false);
    let seconds = tokio::spawn(store_lane_seconds(
        state.clone(),
        proxy.clone(),
        id,
        stopped,
    ));
    tokio::spawn(async move {
        if let Err(e) = serin_proxy::run(listener, proxy, shutdown).await {
            tracing::error!(error = %e, "the embedded proxy stopped");
        }
        follow.abort();
        let _ = stop.send(true);
        let _ = seconds.await;
    })
}

/// Writes the embedded proxy's finished seconds to the store every second;
/// when `stopped` turns true, writes all it has (a few tries) and returns.
async fn store_lane_seconds(st: App, p: Proxy, id: String, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut backlog = Backlog::new(BRIDGE_CAPACITY);
    let mut shift = 0i64;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        if last {
            backlog.take_all(&p);
        } else {
            // The proxy counts seconds on the wall clock, whatever `App`'s is.
            backlog.take_finished(&p, chrono::Utc::now().timestamp());
        }
        for attempt in 0..if last { 5 } else { 1 } {
            if backlog.buckets.is_empty() {
                break;
            }
            // Its seconds are the host's; the controller seals seconds on the
            // database's clock (see `leadership::measure_clock`): stored as
            // the database's, so a host whose clock is off is judged on time.
            // The shift moves only when the offset has left it by more than
            // 0.75 s: a rounding that flips between readings would put
            // later seconds onto ones already stored (and dropped as repeats).
            let offset = st.clock_offset().num_milliseconds() as f64 / 1000.0;
            if (offset - shift as f64).abs() > 0.75 {
                shift = offset.round() as i64;
            }
            let batch = backlog
                .buckets
                .iter()
                .cloned()
                .map(|mut b| {
                    b.second += shift;
                    b
                })
                .collect();
            match st.store.record_lane_buckets(&id, batch).await {
                Ok(_) => backlog.buckets.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, buffered = backlog.buckets.len(), attempt, "cannot store lane metrics; keeping them");
                    if last {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        let info = ProxyInfo {
            id: id.clone(),
            name: "embedded".into(),
            route_version: p.version(),
            last_contact: st.now(),
            dropped_buckets: backlog.dropped,
            kind: "embedded".into(),
        };
        let _ = st.store.touch_proxy(info).await;
        if last {
            if !backlog.buckets.is_empty() {
                tracing::error!(
                    lost = backlog.buckets.len(),
                    "lane seconds could not be stored before exit"
                );
            }
            return;
        }
    }
}
