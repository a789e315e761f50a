//! SQLite's single writer, with group commit.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every commit
//! waits for the disk. Rather than let request tasks contend for the write lock and
//! each pay for its own fsync, one thread owns the write connection. Jobs queue on
//! a channel; the thread takes every job waiting (up to [`MAX_GROUP`]), runs each in
//! its own savepoint — so a failing job rolls back alone — commits once, and only
//! then answers each job. Under load many small writes share one fsync; no caller
//! hears "done" before its data is durable.

use std::sync::mpsc;

use rusqlite::{Connection, Transaction};
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
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut txn = match conn.transaction() {
            Ok(t) => t,
            Err(e) => {
                let err = sql_err(e);
                tracing::error!(error = %err, "cannot begin a SQLite write transaction");
                // Jobs are dropped unanswered: their callers see `Unavailable`.
                drop(group);
                continue;
            }
        };
        let completions: Vec<Completion> = group.into_iter().map(|job| job(&mut txn)).collect();
        let committed = txn.commit().map_err(sql_err);
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = completions.len(), "SQLite commit failed");
        }
        for complete in completions {
            complete(committed.clone());
        }
    }
}
