//! One module, one `router()`, per feature.

pub mod health;
pub mod products;
pub mod releases;
pub mod signals;
