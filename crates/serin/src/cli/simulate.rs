//! The arguments of `serin simulate`.

#[allow(unused_imports)]
use super::*;

/// `serin simulate`: the traffic, the plan and the judge.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Requests per second, both lanes together.
    #[arg(long, default_value_t = 100)]
    pub rps: u32,
    /// The canary's share of requests (0–1), when `--steps` isn't given.
    #[arg(long, default_value_t = 0.1)]
    pub canary_share: f64,
    /// Canary weights in percent, each analysed for an equal part of the horizon
    /// (e.g. `5,25,50,100`).
    #[arg(long, value_delimiter = ',')]
    pub steps: Option<Vec<u8>>,
    /// Stable's error rate (0–1).
    #[arg(long, default_value_t = 0.01)]
    pub stable_error_rate: f64,
    /// The canary's error rate (0–1); defaults to stable's.
    #[arg(long)]
    pub canary_error_rate: Option<f64>,
    /// Canary latency as a multiple of stable's at every quantile (lognormal,
    /// median 20 ms, σ 0.5).
    #[arg(long, default_value_t = 1.0)]
    pub latency_scale: f64,
    /// Milliseconds added to every canary request (with `--latency-scale 1.03
    /// --latency-plus-ms 0.3`: lanes that differ irrelevantly).
    #[arg(long, default_value_t = 0.0)]
    pub latency_plus_ms: f64,
    /// Fraction of canary requests given a slow tail…
    #[arg(long, default_value_t = 0.0)]
    pub tail_fraction: f64,
    /// …this many times slower.
    #[arg(long, default_value_t = 1.0)]
    pub tail_factor: f64,
    /// Seconds each rollout may take.
    #[arg(long, default_value_t = 1800)]
    pub horizon: u32,
    /// The rollout's α (false-rollback probability of the sequential judge).
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// Rollouts to simulate.
    #[arg(long, default_value_t = 1000)]
    pub runs: u64,
    /// Seed of the traffic generator: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which judge decides.
    #[arg(long, value_enum, default_value_t = SimJudge::Sequential)]
    pub judge: SimJudge,
    /// Let analysis steps run their whole time even with promotion evidence.
    #[arg(long)]
    pub no_early_promotion: bool,
    /// With `--judge flagger`: the minimum success rate of each minute, percent.
    #[arg(long, default_value_t = 99.0)]
    pub flagger_min_success_rate: f64,
    /// Seconds before the sequential judge sees a second, as the live
    /// controller does (its seal lag is 2); 0 = the judge's own speed.
    #[arg(long, default_value_t = 0)]
    pub lag: u32,
    /// Replay recorded per-second lane buckets (the JSON array that
    /// `GET /api/v1/canary/{id}/seconds` returns) instead of synthetic traffic:
    /// one run, judged second by second.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Simulation threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The judge `serin simulate` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimJudge {
    /// Serin's sequential judge.
    Sequential,
    /// Flagger's default: 1-minute success-rate checks ≥ 99%, rollback after 5 failures.
    Flagger,
}
