//! Sequential tests: statistics that stay valid however often they are looked at.
//!
//! A fixed-horizon test (a t-test, Mann-Whitney) promises its error rate only if
//! it is computed once, at a sample size chosen in advance. A canary controller
//! looks every second; re-applying such a test as data arrives rejects a true
//! null far more often than its nominal level. The tests here are built from
//! nonnegative supermartingales under the null — products of per-observation
//! likelihood ratios, mixed over the alternatives — so Ville's inequality bounds
//! the chance that they *ever* cross `1/α`: looking after every request costs
//! nothing.
//!
//! - [`errors`]: is the canary's error rate higher than stable's? An exact
//!   mixture likelihood-ratio test on which lane each error falls in.

pub mod errors;
