//! serin-server's integration tests.

mod app;
mod engines;
mod leadership;
mod lifecycle;
mod openapi;
mod probe;
mod services;
