//! The store's integration suite. Every test body runs twice: on a fresh SQLite
//! file, and on PostgreSQL in a schema of its own (dropped afterwards).
//!
//! PostgreSQL is found at `SERIN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it can't be reached the
//! PostgreSQL half is skipped with a message — except when `CI=true`, where a
//! missing PostgreSQL fails the test.

mod canary;
mod harness;
mod manager;
mod notify;
mod proxy;
mod suite;
