//! The printed report: outcomes per scenario, A/A rates with their bounds,
//! reasons.

#[allow(unused_imports)]
use super::*;

pub(super) fn pct(k: usize, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        100.0 * k as f64 / n as f64
    }
}

/// What didn't end by promotion or rollback, and errors: "; promoted 38, paused 1".
pub(super) fn other_outcomes(mine: &[&RunRecord]) -> String {
    let mut parts = Vec::new();
    for (o, label) in [
        (Outcome::Promoted, "promoted"),
        (Outcome::Paused, "paused (inconclusive)"),
        (Outcome::Capped, "still running at the cap"),
        (Outcome::Error, "errors (not counted)"),
    ] {
        let n = mine.iter().filter(|r| r.outcome == o).count();
        if n > 0 {
            parts.push(format!("{label} {n}"));
        }
    }
    parts.join(", ")
}

pub(super) fn print_reasons(mine: &[&RunRecord], outcome: Outcome) {
    for (reason, n) in reasons(
        mine.iter()
            .filter(|r| r.outcome == outcome)
            .map(|r| r.reason.as_deref().unwrap_or("(no reason given)")),
    ) {
        println!("      {n:>3}x {reason}");
    }
}

pub(super) fn aa_line(label: &str, mine: &[&RunRecord]) {
    let counted: Vec<&RunRecord> = mine
        .iter()
        .copied()
        .filter(|r| r.outcome != Outcome::Error)
        .collect();
    let n = counted.len();
    let k = counted
        .iter()
        .filter(|r| r.outcome == Outcome::RolledBack)
        .count();
    let upper = clopper_pearson_upper(k as u64, n as u64, 0.05);
    println!(
        "A/A {label}: false rollbacks {k}/{n} = {:.1}% (95% Clopper-Pearson upper bound {:.1}%){}",
        pct(k, n),
        upper * 100.0,
        match other_outcomes(mine) {
            o if o.is_empty() => String::new(),
            o => format!("; {o}"),
        }
    );
}

pub(super) fn report(scenarios: &[Scenario], states: &[ScenarioState], records: &[RunRecord]) {
    let of = |s: usize| -> Vec<&RunRecord> {
        let mut v: Vec<&RunRecord> = records.iter().filter(|r| r.scenario == s).collect();
        v.sort_by_key(|r| r.run);
        v
    };
    let mut pooled: Vec<&RunRecord> = Vec::new();
    let mut aa_count = 0;
    for (i, s) in scenarios.iter().enumerate() {
        let mine = of(i);
        if mine.is_empty() {
            continue;
        }
        match s.kind {
            Kind::AA => {
                aa_line(&s.name, &mine);
                print_reasons(&mine, Outcome::RolledBack);
                print_reasons(&mine, Outcome::Error);
                pooled.extend(&mine);
                aa_count += 1;
            }
            Kind::Regression => {
                let counted = mine.iter().filter(|r| r.outcome != Outcome::Error).count();
                let mut times: Vec<f64> = mine
                    .iter()
                    .filter(|r| r.outcome == Outcome::RolledBack)
                    .filter_map(|r| r.time_to_rollback_s)
                    .collect();
                times.sort_by(f64::total_cmp);
                let back = mine
                    .iter()
                    .filter(|r| r.outcome == Outcome::RolledBack)
                    .count();
                let within = times.iter().filter(|&&t| t <= WITHIN).count();
                let others = other_outcomes(&mine);
                println!(
                    "regression {}: time to rollback median {:.1} s, p90 {:.1} s, max {:.1} s; rolled back {back}/{counted}, within {WITHIN:.0} s {within}/{counted}{}",
                    s.name,
                    quantile(&times, 0.5),
                    quantile(&times, 0.9),
                    times.last().copied().unwrap_or(f64::NAN),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!("; {others}")
                    }
                );
                print_reasons(&mine, Outcome::RolledBack);
                print_reasons(&mine, Outcome::Error);
            }
        }
        let (sent, transport, no_route, proxy_failed) = states[i].tally.read();
        if transport + no_route + proxy_failed > 0 {
            println!(
                "      load: {sent} requests sent; {transport} without an answer, {no_route} before the route existed (404), {proxy_failed} proxy 502/504"
            );
            for e in states[i]
                .tally
                .examples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                println!("        e.g. {e}");
            }
        }
    }
    if aa_count > 1 {
        aa_line(&format!("pooled over {aa_count} A/A scenarios"), &pooled);
    }
}

/// Serin's own figure of how its controller kept up: tick durations.
pub(super) async fn controller_ticks(ctx: &Ctx) {
    let Ok(text) = ctx.api_call_text("/metrics").await else {
        return;
    };
    let mut buckets = BTreeMap::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("serin_controller_tick_seconds_bucket{le=\"") {
            if let Some((le, n)) = rest.split_once("\"} ") {
                buckets.insert(le.to_string(), n.trim().parse::<f64>().unwrap_or(0.0));
            }
        } else if let Some(v) = l.strip_prefix("serin_controller_tick_seconds_sum ") {
            sum = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("serin_controller_tick_seconds_count ") {
            count = v.trim().parse().unwrap_or(0.0);
        }
    }
    if count > 0.0 {
        let over = |le: &str| buckets.get(le).map_or(f64::NAN, |b| count - b);
        println!(
            "serin controller: {count} ticks, mean {:.1} ms, over 0.5 s: {}, over 1 s: {}",
            sum / count * 1000.0,
            over("0.5"),
            over("1")
        );
    }
}
