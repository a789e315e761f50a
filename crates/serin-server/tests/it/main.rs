//! serin-server's integration tests.

mod openapi;
mod probe;
