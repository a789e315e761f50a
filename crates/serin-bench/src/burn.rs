//! `serin-bench burn --duty D`: a noisy neighbour. One thread spins for `D` of
//! every 10 ms period and sleeps the rest, so it takes about `D` of one core in
//! short bursts — the kind of neighbour that delays whatever the scheduler puts
//! beside it by a few milliseconds now and then. With `--exit-on-eof` it stops
//! when its standard input closes (the benchmark that started it is gone).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::upstream::{exit_on_eof, num};

/// One busy-then-idle cycle.
const PERIOD: Duration = Duration::from_millis(10);

/// Runs the burner until killed.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let duty: f64 = num(args, "--duty", 0.7)?;
    if !(0.0..=1.0).contains(&duty) {
        bail!("--duty is a share of one core, 0–1");
    }
    if args.iter().any(|a| a == "--exit-on-eof") {
        exit_on_eof();
    }
    let busy = PERIOD.mul_f64(duty);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    loop {
        let start = Instant::now();
        while start.elapsed() < busy {
            // Work the optimiser can't remove.
            for _ in 0..1000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            std::hint::black_box(x);
        }
        std::thread::sleep(PERIOD.saturating_sub(start.elapsed()));
    }
}
