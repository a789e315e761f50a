//! serin-server's integration tests.

mod app;
mod engines;
mod gateway;
mod integrations;
mod leadership;
mod lifecycle;
mod metrics;
mod openapi;
mod probe;
mod services;
