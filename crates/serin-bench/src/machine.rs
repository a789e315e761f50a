//! What the machine was doing during a benchmark: load averages and CPU time,
//! from `uptime` and /proc (Linux; elsewhere the figures are left out).

/// Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on every
/// Linux this runs on).
const CLK_TCK: f64 = 100.0;

/// How many cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `uptime`'s line, or the load averages from /proc.
pub fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| {
            std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| format!("load average {}", l.trim()))
        })
        .unwrap_or_else(|| "load unknown".into())
}

/// The 1-minute load average.
pub fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds (user + system) a process has used so far.
pub fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// The whole machine's busy and total CPU time so far, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    busy: f64,
    total: f64,
}

impl MachineCpu {
    /// Now, from the first line of /proc/stat.
    pub fn now() -> Option<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: f64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4).unwrap_or(&0.0);
        Some(MachineCpu {
            busy: (total - idle) / CLK_TCK,
            total: total / CLK_TCK,
        })
    }

    /// The busy share of all cores since `earlier`, 0–1.
    pub fn busy_since(self, earlier: MachineCpu) -> f64 {
        let total = self.total - earlier.total;
        if total <= 0.0 {
            return f64::NAN;
        }
        (self.busy - earlier.busy) / total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_time() {
        let t0 = process_cpu(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu(std::process::id()).unwrap() >= t0);
        let a = MachineCpu::now().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = MachineCpu::now().unwrap().busy_since(a);
        assert!((0.0..=1.0).contains(&b) || b.is_nan());
    }
}
