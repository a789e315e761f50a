//! `serin-bench upstream`: a stand-in HTTP service for the verdicts benchmark.
//!
//! A plain-tokio HTTP/1.1 server (keep-alive, one request at a time per
//! connection, which is all a proxy's connection pool sends) that answers every
//! request after a latency drawn from a shape, with `503` for a given share of
//! them. It prints `listening on PORT` and serves until killed, or — with
//! `--exit-on-eof`, which the benchmark passes — until its standard input
//! closes, so it never outlives the benchmark that started it.
//!
//! Latencies are waited out with `tokio::time::sleep`, whose timer has a
//! resolution of 1 ms: a wait is rounded up to the next millisecond tick, so
//! sub-millisecond differences (`--plus-ms 0.3`) show only on average, as a
//! shift in how often a wait crosses a tick. Both lanes are rounded alike.
//! An error is answered after the same latency draw as a success, so an error
//! regression doesn't also change the canary's latency.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The latency distribution of a service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Lognormal: median M, σ 0.5 (p95 ≈ 2.3 M).
    LogNormal,
    /// 4% of requests 20× slower than M, the rest M; both with a small jitter (σ 0.05).
    Heavy,
    /// 70% around M and 30% around 4 M, each lognormal with σ 0.2.
    Bimodal,
}

impl Shape {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::LogNormal => "lognormal",
            Shape::Heavy => "heavy",
            Shape::Bimodal => "bimodal",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Shape> {
        Ok(match s {
            "lognormal" => Shape::LogNormal,
            "heavy" => Shape::Heavy,
            "bimodal" => Shape::Bimodal,
            _ => bail!("--shape: `{s}` is not lognormal, heavy or bimodal"),
        })
    }
}

/// How one upstream process behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Latency shape.
    pub shape: Shape,
    /// The shape's median (its fast mode for `heavy` and `bimodal`), ms.
    pub median_ms: f64,
    /// Share of requests answered 503, 0–1.
    pub errors: f64,
    /// Every latency is multiplied by this…
    pub slower: f64,
    /// …and then this many ms are added.
    pub plus_ms: f64,
}

impl Behaviour {
    /// A service of `shape` around `median_ms`, no errors, no slowdown.
    pub fn new(shape: Shape, median_ms: f64) -> Behaviour {
        Behaviour {
            shape,
            median_ms,
            errors: 0.0,
            slower: 1.0,
            plus_ms: 0.0,
        }
    }

    /// The same with an error share.
    pub fn errors(self, errors: f64) -> Behaviour {
        Behaviour { errors, ..self }
    }

    /// The same, `factor` times slower plus `plus_ms`.
    pub fn slower(self, factor: f64, plus_ms: f64) -> Behaviour {
        Behaviour {
            slower: factor,
            plus_ms,
            ..self
        }
    }

    /// The command-line arguments that reproduce it.
    pub fn to_args(self) -> Vec<String> {
        vec![
            "--shape".into(),
            self.shape.name().into(),
            "--median-ms".into(),
            self.median_ms.to_string(),
            "--errors".into(),
            self.errors.to_string(),
            "--slower".into(),
            self.slower.to_string(),
            "--plus-ms".into(),
            self.plus_ms.to_string(),
        ]
    }

    /// A short description, e.g. `lognormal 20 ms, 1% errors, x1.03 +0.3 ms`.
    pub fn describe(self) -> String {
        let mut s = format!("{} {} ms", self.shape.name(), self.median_ms);
        if self.errors > 0.0 {
            s += &format!(", {}% errors", self.errors * 100.0);
        }
        if self.slower != 1.0 || self.plus_ms != 0.0 {
            s += &format!(", x{}", self.slower);
            if self.plus_ms != 0.0 {
                s += &format!(" +{} ms", self.plus_ms);
            }
        }
        s
    }

    /// One request's latency (ms) and whether it fails.
    fn draw(&self, rng: &mut Rng) -> (f64, bool) {
        let m = self.median_ms;
        let base = match self.shape {
            Shape::LogNormal => m * (0.5 * rng.normal()).exp(),
            Shape::Heavy => {
                let mode = if rng.uniform() < 0.04 { 20.0 * m } else { m };
                mode * (0.05 * rng.normal()).exp()
            }
            Shape::Bimodal => {
                let mode = if rng.uniform() < 0.3 { 4.0 * m } else { m };
                mode * (0.2 * rng.normal()).exp()
            }
        };
        let error = rng.uniform() < self.errors;
        (base * self.slower + self.plus_ms, error)
    }
}

/// SplitMix64: small, fast, and good enough for drawing latencies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1): never exactly 0, so its logarithm is finite.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; the second value is thrown away for simplicity).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The value of `--name` in `args`, if given.
pub fn flag<'a>(args: &'a [String], name: &str) -> anyhow::Result<Option<&'a str>> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(Some(
            args.get(i + 1)
                .with_context(|| format!("{name} needs a value"))?
                .as_str(),
        )),
        None => Ok(None),
    }
}

/// A number given as `--name X`, or `default`.
pub fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match flag(args, name)? {
        Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{name} {v}: {e}")),
        None => Ok(default),
    }
}

/// Exits the process when standard input closes (the parent died or let go).
pub fn exit_on_eof() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// `serin-bench upstream --shape S --median-ms M --errors E [--slower F] [--plus-ms A] [--seed N] [--exit-on-eof]`.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let b = Behaviour {
        shape: Shape::parse(flag(args, "--shape")?.unwrap_or("lognormal"))?,
        median_ms: num(args, "--median-ms", 20.0)?,
        errors: num(args, "--errors", 0.0)?,
        slower: num(args, "--slower", 1.0)?,
        plus_ms: num(args, "--plus-ms", 0.0)?,
    };
    if !(0.0..=1.0).contains(&b.errors) || b.median_ms < 0.0 || b.slower < 0.0 {
        bail!("--errors is a share 0–1; --median-ms and --slower are not negative");
    }
    let seed: u64 = num(args, "--seed", 1)?;
    if args.iter().any(|a| a == "--exit-on-eof") {
        exit_on_eof();
    }
    // One thread: a small service process, whose timer and scheduling noise is
    // its own (what "separate processes" means in the benchmark).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(b, seed))
}

async fn serve(b: Behaviour, seed: u64) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {port}")?;
        out.flush()?;
    }
    // Each connection draws from its own generator: seeded from the process's
    // seed and the connection's number, so runs are reproducible per connection.
    let conns = AtomicU64::new(0);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let n = conns.fetch_add(1, Ordering::Relaxed);
        let rng = Rng::new(seed ^ n.wrapping_mul(0xd1b5_4a32_d192_ed03));
        tokio::spawn(async move {
            let _ = connection(stream, b, rng).await;
        });
    }
}

/// Longest request or header line accepted.
const MAX_LINE: usize = 16 * 1024;

/// Serves one keep-alive connection until the client closes it.
async fn connection(stream: TcpStream, b: Behaviour, mut rng: Rng) -> anyhow::Result<()> {
    let mut io = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        // The request line (blank lines before it are tolerated, as RFC 9112 asks).
        line.clear();
        if read_line(&mut io, &mut line).await? == 0 {
            return Ok(());
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let http10 = line.trim_ascii_end().ends_with(b"HTTP/1.0");
        let (mut length, mut chunked, mut close) = (0u64, false, http10);
        loop {
            line.clear();
            if read_line(&mut io, &mut line).await? == 0 {
                return Ok(());
            }
            let h = line.trim_ascii();
            if h.is_empty() {
                break;
            }
            let Some(colon) = h.iter().position(|&c| c == b':') else {
                bail!("bad header line");
            };
            let (name, value) = (&h[..colon], h[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)?.parse()?;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = value.eq_ignore_ascii_case(b"close");
            }
        }
        // Bodies are read and dropped (the benchmark sends GETs without one).
        if chunked {
            skip_chunked(&mut io).await?;
        } else if length > 0 {
            tokio::io::copy(&mut (&mut io).take(length), &mut tokio::io::sink()).await?;
        }
        let (ms, error) = b.draw(&mut rng);
        tokio::time::sleep(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0)).await;
        let head = if error {
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n"
        } else {
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n"
        };
        let body = if error { "error\n" } else { "ok\n" };
        let conn = if close { "connection: close\r\n" } else { "" };
        io.get_mut()
            .write_all(format!("{head}{conn}\r\n{body}").as_bytes())
            .await?;
        if close {
            return Ok(());
        }
    }
}

/// Reads one line (up to and including `\n`) into `buf`; 0 at end of stream.
async fn read_line(io: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> anyhow::Result<usize> {
    let n = (&mut *io)
        .take(MAX_LINE as u64)
        .read_until(b'\n', buf)
        .await?;
    if n == MAX_LINE && buf.last() != Some(&b'\n') {
        bail!("line too long");
    }
    Ok(n)
}

/// Reads and drops a chunked body, trailers included.
async fn skip_chunked(io: &mut BufReader<TcpStream>) -> anyhow::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(io, &mut line).await? == 0 {
            bail!("body cut off");
        }
        let text = std::str::from_utf8(&line)?.trim();
        let size = u64::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if read_line(io, &mut line).await? == 0 || line.trim_ascii().is_empty() {
                    return Ok(());
                }
            }
        }
        tokio::io::copy(&mut (&mut *io).take(size + 2), &mut tokio::io::sink()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(mut v: Vec<f64>, p: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    }

    #[test]
    fn shapes_have_their_documented_quantiles() {
        let mut rng = Rng::new(7);
        let draw = |b: Behaviour, rng: &mut Rng| -> Vec<f64> {
            (0..200_000).map(|_| b.draw(rng).0).collect()
        };
        let ln = draw(Behaviour::new(Shape::LogNormal, 20.0), &mut rng);
        assert!((quantile(ln.clone(), 0.5) - 20.0).abs() < 0.3);
        // exp(1.645 * 0.5) = 2.276
        assert!((quantile(ln, 0.95) / 20.0 - 2.276).abs() < 0.05);
        let heavy = draw(Behaviour::new(Shape::Heavy, 10.0), &mut rng);
        let slow = heavy.iter().filter(|&&x| x > 100.0).count() as f64 / heavy.len() as f64;
        assert!((slow - 0.04).abs() < 0.003, "{slow}");
        let bi = draw(Behaviour::new(Shape::Bimodal, 10.0), &mut rng);
        let high = bi.iter().filter(|&&x| x > 20.0).count() as f64 / bi.len() as f64;
        assert!((high - 0.3).abs() < 0.01, "{high}");
        let slower = draw(
            Behaviour::new(Shape::LogNormal, 20.0).slower(1.5, 1.0),
            &mut rng,
        );
        assert!((quantile(slower, 0.5) - 31.0).abs() < 0.5);
    }

    #[test]
    fn errors_come_at_their_rate() {
        let mut rng = Rng::new(3);
        let b = Behaviour::new(Shape::LogNormal, 1.0).errors(0.03);
        let n = 100_000;
        let e = (0..n).filter(|_| b.draw(&mut rng).1).count() as f64 / n as f64;
        assert!((e - 0.03).abs() < 0.003, "{e}");
    }

    #[tokio::test]
    async fn answers_keep_alive_requests() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let b = Behaviour::new(Shape::LogNormal, 1.0).errors(0.5);
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let _ = connection(s, b, Rng::new(1)).await;
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut codes = Vec::new();
        for _ in 0..20 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\n\r\nabc")
                .await
                .unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            codes.push(text[9..12].to_string());
            assert!(
                text.ends_with("ok\n") || text.ends_with("error\n"),
                "{text}"
            );
        }
        assert!(codes.iter().any(|c| c == "200") && codes.iter().any(|c| c == "503"));
    }
}
