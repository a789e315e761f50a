//! SQLite's single writer, with group commit.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every commit
//! waits for the disk. Rather than let request tasks contend for the write lock and
//! each pay for its own fsync, one thread owns the write connection. Jobs queue on
//! a channel; the thread takes every job waiting (up to [`MAX_GROUP`]), runs each in
//! its own savepoint — so a failing job rolls back alone — commits once, and only
//! then answers each job. Under load many small writes share one fsync; no caller
//! hears "done" before its data is durable.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::sql_err;
use crate::{Result, StoreError};

/// Most jobs committed together.
const MAX_GROUP: usize = 512;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Completion + Send>;

/// A handle to the writer thread. Cloning shares the thread.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread over `conn`.
    pub(crate) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("serin-sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` inside a write transaction; resolves after the commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn: &mut Transaction<'_>| {
            let outcome = in_savepoint(txn, f);
            Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(outcome));
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn in_savepoint<T>(
    txn: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let sp = txn.savepoint().map_err(sql_err)?;
    let out = f(&sp)?; // dropping an uncommitted savepoint rolls it back
    sp.commit().map_err(sql_err)?;
    Ok(out)
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return, // every handle dropped: the store is closed
            }
        }
        while pending.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &mut pending);
    }
}

/// Runs queued jobs in one transaction and answers them after the commit.
///
/// Some failures (disk full, I/O error) make SQLite roll back the whole
/// transaction by itself. The jobs that ran in it are then answered with an error,
/// and the jobs not yet run stay queued for a fresh transaction, so no job is
/// ever answered "failed" while its data was stored, or "done" while it wasn't.
fn commit_group(conn: &mut Connection, pending: &mut VecDeque<Job>) {
    let mut txn = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(t) => t,
        Err(e) => {
            let err = sql_err(e);
            tracing::error!(error = %err, "cannot begin a SQLite write transaction");
            // Dropping a job drops its reply channel: its caller hears `Unavailable`.
            pending.clear();
            return;
        }
    };
    let mut completions: Vec<Completion> = Vec::with_capacity(pending.len());
    while let Some(job) = pending.pop_front() {
        // A panicking job drops its reply channel (its caller sees `Unavailable`)
        // and its savepoint rolls back while unwinding; the writer goes on.
        if let Ok(complete) = panic::catch_unwind(AssertUnwindSafe(|| job(&mut txn))) {
            completions.push(complete);
        } else {
            tracing::error!("a SQLite write job panicked; its changes were rolled back");
        }
        if txn.is_autocommit() {
            let err =
                StoreError::Unavailable("the database rolled back the write transaction".into());
            tracing::error!(
                jobs = completions.len(),
                "SQLite rolled back a write transaction by itself"
            );
            drop(txn);
            for complete in completions {
                complete(Err(err.clone()));
            }
            return; // the rest stay in `pending` for the next transaction
        }
    }
    let committed = txn.commit().map_err(sql_err);
    if let Err(e) = &committed {
        tracing::error!(error = %e, jobs = completions.len(), "SQLite commit failed");
    }
    for complete in completions {
        complete(committed.clone());
    }
}
