//! Statistics with no opinion about canaries: histograms that merge, and the
//! anytime-valid tests the judges build on.

pub mod histogram;
pub mod sequential;
