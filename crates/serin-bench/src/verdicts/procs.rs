//! The processes a run needs: one `serin up` and the upstream stand-ins of each
//! scenario.

#[allow(unused_imports)]
use super::*;

/// A running `serin up`.
#[derive(Debug)]
pub(super) struct Serin {
    pub(super) child: Child,
    pub(super) api: String,
    pub(super) proxy: String,
    pub(super) dir: tempfile::TempDir,
}

pub(super) async fn start_serin(bin: &Path) -> anyhow::Result<Serin> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let log = std::fs::File::create(dir.path().join("serin.log"))?;
    let mut child = Command::new(bin)
        .args(["up", "--listen", "127.0.0.1:0", "--database-url", &db])
        .args(["--proxy-listen", "127.0.0.1:0"])
        .env("SERIN_ADMIN_TOKEN", KEY)
        .env("SERIN_RATE_LIMIT", "0")
        .env("SERIN_LOG", "warn")
        .env("SERIN_MAX_ACTIVE_DEPLOYMENTS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    // `serin up` prints `serin: listening on http://ADDR` and, with a proxy,
    // `serin: proxy listening on http://ADDR` once both are bound.
    let (mut api, mut proxy) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.is_none() || proxy.is_none() {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .context("serin up didn't announce its addresses within 60 s")??;
        let Some(line) = line else {
            let log = std::fs::read_to_string(dir.path().join("serin.log")).unwrap_or_default();
            bail!("serin up exited before announcing its addresses:\n{log}");
        };
        if let Some(u) = line.strip_prefix("serin: listening on ") {
            api = Some(u.trim().to_string());
        } else if let Some(u) = line.strip_prefix("serin: proxy listening on ") {
            proxy = Some(u.trim().to_string());
        }
    }
    // Keep reading its standard output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Serin {
        child,
        api: api.unwrap_or_default(),
        proxy: proxy.unwrap_or_default(),
        dir,
    })
}

/// Starts this binary as a helper (`upstream …` or `burn …`). Its standard input
/// is a pipe held by the returned `Child`: the helper exits when it closes, so
/// it can't outlive the benchmark even if the benchmark is killed outright.
pub(super) fn spawn_helper(args: &[String]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .args(args)
        .arg("--exit-on-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a helper process")
}

/// Starts `serin-bench upstream …` and returns it with its base URL.
pub(super) async fn start_upstream(args: Vec<String>) -> anyhow::Result<(Child, String)> {
    let mut all = vec!["upstream".to_string()];
    all.extend(args);
    let mut child = spawn_helper(&all)?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the upstream didn't start within 10 s")??
        .context("the upstream exited at start")?;
    let port = line
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line from the upstream: {line}"))?
        .trim();
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// The upstream processes of one scenario.
#[derive(Debug)]
pub(super) struct Upstreams {
    pub(super) stable: String,
    pub(super) canary: String,
    pub(super) children: Vec<Child>,
}

pub(super) async fn start_upstreams(s: &Scenario, seed: u64) -> anyhow::Result<Upstreams> {
    let with_seed = |b: crate::upstream::Behaviour, seed: u64| {
        let mut a = b.to_args();
        a.extend(["--seed".to_string(), seed.to_string()]);
        a
    };
    let (stable_child, stable) = start_upstream(with_seed(s.stable, seed)).await?;
    if s.same_process {
        return Ok(Upstreams {
            canary: stable.clone(),
            stable,
            children: vec![stable_child],
        });
    }
    let (canary_child, canary) = start_upstream(with_seed(s.canary, seed ^ 0x5eed)).await?;
    Ok(Upstreams {
        stable,
        canary,
        children: vec![stable_child, canary_child],
    })
}
