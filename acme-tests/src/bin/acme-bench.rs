//! acme-bench: load generator running full ACME issuance flows.
//!
//! C workers, each with its own account, run flows (newOrder for one fresh
//! random DNS name, authorization, http-01 challenge, authorization polling,
//! finalize, order polling, certificate download) until N flows have been
//! started (`--orders`) or until `--duration` seconds have passed. A
//! watchdog stops the run and reports `stalled` when no HTTP answer arrives
//! and no flow completes for `--stall-timeout` seconds.
//!
//! For a driving script, two marker lines go to stderr:
//! `acme-bench: load start` once the accounts exist and the measured load
//! begins, and `acme-bench: load end` when it is over (before the report).
//! Exit status: 0 when a report was produced (errors and stalls included),
//! 1 when the setup (directory, accounts) failed, 2 on bad arguments.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acme_tests::client::{
    build_http_client, Account, AcmeClient, CsrKey, HttpOptions, IssueOptions, Progress,
};
use acme_tests::jws::AccountKey;
use acme_tests::stats::{process_cpu_time, Samples, Summary};
use clap::{ArgGroup, Parser};
use serde_json::json;

/// How many distinct error messages are kept for the report.
const ERROR_SAMPLES: usize = 5;

#[derive(Parser, Debug)]
#[command(
    name = "acme-bench",
    version,
    about = "Load generator running full ACME (RFC 8555) issuance flows"
)]
#[command(group(ArgGroup::new("amount").required(true).args(["orders", "duration"])))]
struct Args {
    /// ACME directory URL.
    #[arg(long)]
    directory: String,
    /// Number of issuance flows to run.
    #[arg(long)]
    orders: Option<u64>,
    /// Start new flows for this many seconds (flows in flight are finished).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Number of concurrent workers (one account each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop and report `stalled` when nothing is answered for this long.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    stall_timeout: f64,
    /// Timeout of every single HTTP request.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    request_timeout: f64,
    /// Give up a flow (counted as an error) after this long.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    flow_timeout: f64,
    /// Sleep between polls of an authorization or an order.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    poll_interval_ms: u64,
    /// Do not verify the server's TLS certificate.
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// Trust only this PEM root certificate for the server's TLS certificate.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Allow HTTP/2 (negotiated by ALPN over TLS, all workers multiplexed on
    /// one connection). Default: HTTP/1.1 with a keep-alive connection per
    /// worker, which is how independent ACME clients reach a server.
    #[arg(long)]
    http2: bool,
    /// Client runtime threads (1 = single-threaded, lightest on a shared machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Parent domain of the random names ordered.
    #[arg(long, default_value = "bench.example.com")]
    domain: String,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    json: bool,
    /// Print a progress line to stderr every this many seconds (0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    progress: f64,
}

/// State shared by the workers.
struct Shared {
    started: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
    reused_authz: AtomicU64,
    stop: AtomicBool,
    orders: Option<u64>,
    deadline: Option<Instant>,
    flow: Mutex<Samples>,
    finalize: Mutex<Samples>,
    error_samples: Mutex<Vec<String>>,
    progress: Arc<Progress>,
}

impl Shared {
    fn take_ticket(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return false;
            }
        }
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        match self.orders {
            Some(max) => n < max,
            None => true,
        }
    }

    fn record_error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.error_samples.lock().unwrap();
        if s.len() < ERROR_SAMPLES && !s.contains(&msg) {
            s.push(msg);
        }
    }
}

fn random_label() -> String {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn worker(
    mut account: Account,
    csr_key: CsrKey,
    shared: Arc<Shared>,
    domain: String,
    opts: IssueOptions,
) {
    while shared.take_ticket() {
        let names = vec![format!("{}.{}", random_label(), domain)];
        let before = account.requests_sent();
        let result = match csr_key.csr_der(&names) {
            Ok(csr) => account.issue(&names, &csr, &opts).await,
            Err(e) => Err(e),
        };
        shared.requests.fetch_add(
            u64::from(account.requests_sent() - before),
            Ordering::Relaxed,
        );
        match result {
            Ok(issued) => {
                shared.completed.fetch_add(1, Ordering::Relaxed);
                shared
                    .reused_authz
                    .fetch_add(issued.reused_authorizations as u64, Ordering::Relaxed);
                shared.flow.lock().unwrap().push(issued.total);
                shared.finalize.lock().unwrap().push(issued.finalize);
                shared.progress.tick();
            }
            Err(e) => shared.record_error(e.to_string()),
        }
    }
}

struct Setup {
    accounts: Vec<(Account, CsrKey)>,
    took: Duration,
}

async fn setup(args: &Args, progress: Arc<Progress>) -> Result<Setup, String> {
    let t0 = Instant::now();
    let ca_pem = match &args.ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?),
        None => None,
    };
    let http = build_http_client(&HttpOptions {
        insecure: args.insecure,
        ca_pem,
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        http1_only: !args.http2,
    })
    .map_err(|e| e.to_string())?;
    let client = AcmeClient::new(http, &args.directory, Some(progress))
        .await
        .map_err(|e| format!("cannot fetch directory: {e}"))?;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        set.spawn(async move {
            let key =
                AccountKey::generate().map_err(|_| "cannot generate account key".to_string())?;
            let csr_key = CsrKey::generate().map_err(|e| e.to_string())?;
            let account = Account::create(client, key, &[])
                .await
                .map_err(|e| format!("newAccount failed: {e}"))?;
            Ok::<_, String>((account, csr_key))
        });
    }
    let mut accounts = Vec::with_capacity(args.concurrency);
    while let Some(r) = set.join_next().await {
        accounts.push(r.map_err(|e| format!("account task failed: {e}"))??);
    }
    Ok(Setup {
        accounts,
        took: t0.elapsed(),
    })
}

fn summary_json(s: &Summary) -> serde_json::Value {
    json!({
        "count": s.count,
        "mean": round3(s.mean_ms),
        "p50": round3(s.p50_ms),
        "p90": round3(s.p90_ms),
        "p99": round3(s.p99_ms),
        "max": round3(s.max_ms),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn run(args: Args) -> (serde_json::Value, i32) {
    let progress = Arc::new(Progress::new());
    let base = json!({
        "directory": args.directory,
        "concurrency": args.concurrency,
        "orders_requested": args.orders,
        "duration_requested_s": args.duration,
    });
    // The setup (directory, one newAccount per worker) is watched too: a
    // server that stops answering must not hang the run.
    let stall_timeout = Duration::from_secs_f64(args.stall_timeout);
    let setup_result = {
        let fut = setup(&args, progress.clone());
        tokio::pin!(fut);
        let mut watch = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                r = &mut fut => break r.map_err(|e| (e, false)),
                _ = watch.tick() => if progress.idle() >= stall_timeout {
                    break Err((format!("no answer for {} s during setup", args.stall_timeout), true));
                }
            }
        }
    };
    let mut setup = match setup_result {
        Ok(s) => s,
        Err((e, stalled)) => {
            let mut v = base;
            v["setup_error"] = json!(e);
            v["stalled"] = json!(stalled);
            v["orders_completed"] = json!(0);
            return (v, 1);
        }
    };

    eprintln!("acme-bench: load start");
    let _ = std::io::stderr().flush();
    let cpu0 = process_cpu_time();
    let load_start = Instant::now();
    let load_offset = load_start - progress.start();
    progress.tick();

    let shared = Arc::new(Shared {
        started: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        reused_authz: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        orders: args.orders,
        deadline: args
            .duration
            .map(|d| load_start + Duration::from_secs_f64(d)),
        flow: Mutex::new(Samples::with_capacity(
            args.orders.unwrap_or(10_000) as usize
        )),
        finalize: Mutex::new(Samples::with_capacity(
            args.orders.unwrap_or(10_000) as usize
        )),
        error_samples: Mutex::new(Vec::new()),
        progress: progress.clone(),
    });
    let opts = IssueOptions {
        poll_interval: Duration::from_millis(args.poll_interval_ms),
        flow_timeout: Duration::from_secs_f64(args.flow_timeout),
        ..IssueOptions::default()
    };
    let mut set = tokio::task::JoinSet::new();
    for (account, csr_key) in setup.accounts.drain(..) {
        set.spawn(worker(
            account,
            csr_key,
            shared.clone(),
            args.domain.clone(),
            opts.clone(),
        ));
    }

    let progress_every = (args.progress > 0.0).then(|| Duration::from_secs_f64(args.progress));
    let mut next_progress = progress_every.map(|p| load_start + p);
    let mut stalled = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            r = set.join_next() => match r {
                None => break,
                Some(Err(e)) => shared.record_error(format!("worker task failed: {e}")),
                Some(Ok(())) => {}
            },
            _ = tick.tick() => {
                if progress.idle() >= stall_timeout {
                    stalled = true;
                    shared.stop.store(true, Ordering::Relaxed);
                    set.abort_all();
                    break;
                }
                if let (Some(every), Some(at)) = (progress_every, next_progress) {
                    if Instant::now() >= at {
                        next_progress = Some(at + every);
                        eprintln!(
                            "acme-bench: {:.0}s completed={} errors={}",
                            load_start.elapsed().as_secs_f64(),
                            shared.completed.load(Ordering::Relaxed),
                            shared.errors.load(Ordering::Relaxed)
                        );
                    }
                }
            }
        }
    }
    let wall = load_start.elapsed();
    let cpu1 = process_cpu_time();
    eprintln!("acme-bench: load end");
    let _ = std::io::stderr().flush();

    // When stalled, the throughput is the one reached up to the last sign of life.
    let elapsed = if stalled {
        progress.last_tick().saturating_sub(load_offset)
    } else {
        wall
    };
    let completed = shared.completed.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let flow = shared.flow.lock().unwrap().summary();
    let fin = shared.finalize.lock().unwrap().summary();
    let requests = shared.requests.load(Ordering::Relaxed);
    let client_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(round3(b.saturating_sub(a).as_secs_f64())),
        _ => None,
    };
    let mut v = base;
    let extra = json!({
        "orders_completed": completed,
        "errors": errors,
        "error_samples": *shared.error_samples.lock().unwrap(),
        "elapsed_s": round3(secs),
        "orders_per_s": round3(completed as f64 / secs),
        "flow_p50_ms": round3(flow.p50_ms),
        "flow_p99_ms": round3(flow.p99_ms),
        "finalize_p50_ms": round3(fin.p50_ms),
        "finalize_p99_ms": round3(fin.p99_ms),
        "flow_ms": summary_json(&flow),
        "finalize_ms": summary_json(&fin),
        "stalled": stalled,
        "completed_before_stall": if stalled { Some(completed) } else { None },
        "stall_detected_after_s": if stalled { Some(round3(wall.as_secs_f64())) } else { None },
        "flows_started": shared.started.load(Ordering::Relaxed).min(args.orders.unwrap_or(u64::MAX)),
        "signed_requests": requests,
        "requests_per_order": if completed + errors > 0 { round3(requests as f64 / (completed + errors) as f64) } else { 0.0 },
        "http_answers": progress.responses(),
        "reused_authorizations": shared.reused_authz.load(Ordering::Relaxed),
        "setup_s": round3(setup.took.as_secs_f64()),
        "client_cpu_s": client_cpu,
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k.as_str()] = val.clone();
    }
    (v, 0)
}

fn print_human(v: &serde_json::Value) {
    let g = |k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
    println!(
        "directory:        {}",
        g("directory").as_str().unwrap_or("")
    );
    println!("concurrency:      {}", g("concurrency"));
    if let Some(e) = v.get("setup_error") {
        println!("setup failed:     {}", e.as_str().unwrap_or(""));
        return;
    }
    println!("orders completed: {}", g("orders_completed"));
    println!("errors:           {}", g("errors"));
    println!("elapsed:          {} s", g("elapsed_s"));
    println!("throughput:       {} orders/s", g("orders_per_s"));
    println!(
        "flow latency:     p50 {} ms, p99 {} ms",
        g("flow_p50_ms"),
        g("flow_p99_ms")
    );
    println!(
        "finalize latency: p50 {} ms, p99 {} ms",
        g("finalize_p50_ms"),
        g("finalize_p99_ms")
    );
    println!("requests/order:   {}", g("requests_per_order"));
    println!("client CPU:       {} s", g("client_cpu_s"));
    if g("stalled").as_bool() == Some(true) {
        println!(
            "STALLED:          no answer for the stall timeout; {} orders completed before; detected after {} s",
            g("completed_before_stall"),
            g("stall_detected_after_s")
        );
    } else {
        println!("stalled:          false");
    }
    if let Some(samples) = v.get("error_samples").and_then(|s| s.as_array()) {
        for s in samples {
            println!("error:            {}", s.as_str().unwrap_or(""));
        }
    }
}

fn main() {
    let args = Args::parse();
    if args.concurrency == 0 {
        eprintln!("acme-bench: --concurrency must be at least 1");
        std::process::exit(2);
    }
    if args.stall_timeout <= 0.0 || args.request_timeout <= 0.0 || args.flow_timeout <= 0.0 {
        eprintln!("acme-bench: timeouts must be positive");
        std::process::exit(2);
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("cannot start the tokio runtime");
    let json_out = args.json;
    let (report, code) = rt.block_on(run(args));
    if json_out {
        println!("{report}");
    } else {
        print_human(&report);
    }
    let _ = std::io::stdout().flush();
    // Do not wait for requests stuck in a stalled server: leave at once.
    std::process::exit(code);
}
