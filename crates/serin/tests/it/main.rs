//! End-to-end tests: the real `serin` binary on port 0, driven over HTTP and
//! through its own CLI. PostgreSQL tests use `SERIN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and are skipped when it is
//! unreachable — except with `CI=true`, where they fail.

mod access;
mod attacks;
mod canary;
mod cli;
mod errors;
mod harness;
mod lifecycle;
mod limits;
mod live;
mod matrix;
mod proxy;
mod quickstart;
mod releases;
mod rollout;
