//! serin-server's integration tests.

mod app;
mod lifecycle;
mod openapi;
mod probe;
mod services;
