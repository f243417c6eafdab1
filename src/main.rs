//! `coupang-etl`: the binary only parses arguments and wires the library crates.

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use coupang_etl::config::LogFormat;
use coupang_etl::exit::{Findings, Outcome};
use coupang_etl::pipeline::PipelineError;
use coupang_etl::{demo, pipeline, reports, Config};
use coupang_ingest::IngestError;
use etl_core::Shutdown;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Coupang WING orders → Kafka → ClickHouse, with payment amounts right to the won.
#[derive(Parser)]
#[command(name = "coupang-etl", version, after_help = coupang_etl::exit::HELP)]
struct Cli {
    /// Config file (TOML). Settings can be overridden with COUPANG_ETL__SECTION__KEY variables.
    #[arg(long, short, global = true, env = "COUPANG_ETL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline on the built-in simulator and check ClickHouse against its ground truth
    ///
    /// Simulates a month of orders for three vendors, runs ingest, transform and load over it, and prints
    /// the daily payment amounts read back from ClickHouse with a ✓ per day that matches the simulator's
    /// own totals. Needs only a running ClickHouse; with no `kafka.brokers` configured it embeds an
    /// in-process Kafka. Uses topics `coupang-demo.*` and a database of its own (see --database).
    Demo(DemoArgs),
    /// Run ingest, transform and load together: over a day range once (--from/--to), or polling until Ctrl-C
    ///
    /// With a range it exits when everything is in ClickHouse, with an exit code that says whether an
    /// account stopped (6), an account's requests gave up (5) or records were dead-lettered (3), and a
    /// line on stderr naming them. Polling (no range) exits 0 on Ctrl-C or SIGTERM, 1 when a stage fails.
    Run(RangeArgs),
    /// Poll Coupang and emit raw events to Kafka: over a day range once (--from/--to), or until Ctrl-C
    ///
    /// With a range, the exit code says whether an account stopped (6), an account's requests gave up (5)
    /// or records were dead-lettered (3), like `run`.
    Ingest(RangeArgs),
    /// Re-collect a historical range of one account, resumably, beside live polling
    ///
    /// Collects order sheets and cancel/return receipts created on the days, and revenue rows recognised
    /// on them (up to yesterday), in API-legal windows at `ingest.backfill_requests_per_second` (the rest
    /// of the vendor's budget stays with live polling). Every finished window is recorded in Kafka: run
    /// the same command again after an interruption and it continues where it stopped. Re-collecting
    /// days that live polling already covered changes nothing downstream.
    ///
    /// Exits 0 when done, 4 when interrupted (run it again), 5 when the account's requests gave up, 6 when
    /// its key was rejected, 3 when records were dead-lettered.
    Backfill(BackfillArgs),
    /// Turn raw events into payment facts until Ctrl-C.
    Transform,
    /// Load payment facts into ClickHouse until Ctrl-C.
    Load,
    /// Create or upgrade the ClickHouse database, tables and views (idempotent); exits 1 when it cannot.
    Migrate,
    /// Check the config without contacting anything (a dry run) and print what the stages would use
    ///
    /// Parses the file and the COUPANG_ETL__… overrides, resolves every secret ({ env } and { file }),
    /// validates every setting, and prints the result with secrets shown only as "set". Exits 1, naming
    /// the setting, when anything is wrong: deploy scripts and systemd's ExecStartPre use it.
    Validate,
    /// Serve the Coupang API simulator, or print its ground truth
    ///
    /// The simulator answers the WING Open API paths the pipeline uses (order sheets by day and by minute
    /// window, one box, one order, on v5 and v4; returnRequests on v6 and v4; revenue-history; and the
    /// v4 returnWithdrawRequests and exchangeRequests lists) with
    /// Coupang's signature check (both header separators, a clock-skew window, one use per signature),
    /// limits, envelopes and error bodies, for a seeded world of orders. Point `ingest.base_url` at it.
    ///
    /// Knobs, in the config file's [sim] section (or COUPANG_ETL__SIM__<KEY> variables):
    ///   seed = 20251001             same seed, same world
    ///   start_date = 2026-10-01     first payment day (Asia/Seoul)
    ///   days = 31                   length of the simulated period
    ///   orders_per_day = 40         mean orders per vendor and day (±50%)
    ///   time_scale = 0              simulated seconds per real second (0: frozen at 09:00 the day
    ///                               after the period; 86400: a day per second); GET /sim/clock shows it
    ///   clock_start = <first day 00:00>   where a running clock starts (Asia/Seoul)
    ///   visibility_delay_minutes = 10     new orders show in the lists this long after payment
    ///   clock_skew_secs = 300       how far a signed-date may be from the gateway's clock
    ///   rate_limit_per_second = 10  calls per vendor per second before 429 (0: off)
    ///   [[sim.vendors]]             vendor_id, access_key, secret_key, key_issued_on (401 from 180 days
    ///                               later), allowed_ips (403 "Not allowed IP" for others)
    /// Lifecycle, in [sim.lifecycle] (a real shop's rates by default; 0 switches a path off):
    ///   cancel_before_dispatch_rate = 0.04  orders cancelled whole while ACCEPT (CANCEL list only)
    ///   partial_cancel_rate = 0.03  orders with some units of one item cancelled before dispatch
    ///   release_stop_rate = 0.01    orders the buyer stops while INSTRUCT (status RU, then CC)
    ///   stock_out_rate = 0.01       orders the seller cancels while INSTRUCT, out of stock
    ///   return_rate = 0.05          delivered orders returned whole (they leave the order-sheet lists)
    ///   partial_refund_rate = 0.02  confirmed orders with some units returned (REFUND rows)
    ///   two_refunds_same_day_share = 0.3   of those, two receipts completed on one day
    ///   long_pending_share = 0.1    release stops and returns still open weeks later (RU, UC, PR)
    ///   withdrawn_rate = 0.01       cancel or return requests the buyer withdraws (returnWithdrawRequests)
    ///   exchange_rate = 0.01        delivered orders exchanged (exchangeRequests; no money moves)
    ///   coupon_rate = 0.3           items bought with coupons, revealed at purchase confirmation
    ///   price_cut_rate = 0.1        items with an option or instant price cut (orderPrice < salesPrice × qty)
    ///   split_shipping_rate = 0.1   multi-item orders shipped in two boxes
    ///   second_box_fee_share = 0.3  split orders whose second box carries its own shipping fee
    ///   first_box_cancel_share = 0.1   split orders whose fee-carrying box alone is cancelled
    ///   buyer_confirm_rate = 0.4    confirmations by the buyer; the rest 7 days after delivery
    ///   adjustment_rate = 0.05      vendor-days with an orderId = 0 adjustment row on revenue-history
    ///   string_code_rate = 0.05     answers whose envelope says "code": "200"
    ///   fractional_time_rate = 0.2  v5 records whose times carry microseconds
    /// Faults, in [sim.faults] (all off by default; decided from the seed and the call number):
    ///   burst_429 = { every = 25, length = 2 }   the first `length` of every `every` calls answer 429
    ///   retry_after_secs = 1        Retry-After sent with 429s
    ///   server_error_rate = 0.0     share of calls answered 500
    ///   slow_rate = 0.0, slow_ms = 1500   slow answers; over 3 s without X-EXTENDED-TIMEOUT: 504 at 3 s
    ///   reset_rate = 0.0            connections broken mid-body
    ///   malformed_json_rate = 0.0   bodies cut short
    ///   missing_field_rate = 0.0    order-sheet records without paidAt (per response)
    ///   repeated_record_rate = 0.0  pages that repeat the previous page's last record
    ///   unreadable_record_rate = 0.0   boxes served with an amount that is not a number, everywhere
    ///
    /// The default vendors are A00010001, A00010002 and C00010003 with access keys sim-access-a/b/c and
    /// secret keys sim-secret-for-<vendor id>. GET /sim/stats returns the calls answered per vendor,
    /// endpoint and HTTP status; GET /sim/truth the ground truth at the simulated clock (CSV).
    #[command(verbatim_doc_comment)]
    Sim(SimArgs),
    /// One screen per account: key days left, last successful calls, checkpoints, how current its
    /// numbers in ClickHouse are; then consumer lag per stage and dead letters
    ///
    /// Reads what the stages leave in Kafka and ClickHouse, so it works from any machine that reaches
    /// them, while the pipeline runs or not. A source that cannot be read is named; the rest is shown.
    ///
    /// The exit code makes it a monitoring check: 0 all well, 6 an account is stopped (key rejected or
    /// expired), 5 an account's last sweep gave up, 3 the dead-letter topic holds records, 1 something
    /// could not be read. Lag, a key to reissue soon and a 429 cool-down do not change it.
    Status,
    /// List linked accounts with their key's expiry.
    Accounts,
    /// Print daily payment amounts per account from ClickHouse.
    Summary,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// ClickHouse database the demo writes to: this; else the config's `[clickhouse] database` when
    /// the config sets one other than the default `coupang`; else `coupang_demo`. The demo empties
    /// only a database it created itself (it marks it); any other existing database is refused.
    #[arg(long)]
    database: Option<String>,
}

#[derive(clap::Args)]
struct BackfillArgs {
    /// The account's alias in the config.
    #[arg(long)]
    account: String,
    /// First day (Asia/Seoul, YYYY-MM-DD).
    #[arg(long)]
    from: NaiveDate,
    /// Last day (inclusive).
    #[arg(long)]
    to: NaiveDate,
    /// Which streams (default: all three).
    #[arg(long, value_enum, value_delimiter = ',')]
    streams: Vec<StreamArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StreamArg {
    Ordersheets,
    Returnrequests,
    Revenue,
}

impl From<StreamArg> for coupang_ingest::Stream {
    fn from(stream: StreamArg) -> Self {
        match stream {
            StreamArg::Ordersheets => coupang_ingest::Stream::OrderSheets,
            StreamArg::Returnrequests => coupang_ingest::Stream::ReturnRequests,
            StreamArg::Revenue => coupang_ingest::Stream::Revenue,
        }
    }
}

#[derive(clap::Args)]
struct RangeArgs {
    /// First day (Asia/Seoul, YYYY-MM-DD) of orders to collect; with --to, runs once and exits.
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// Last day (inclusive).
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Address to serve on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    #[command(subcommand)]
    command: Option<SimCommand>,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Print the expected payment amounts (the ground truth of the configured world) as CSV
    ///
    /// The truth at one moment of the simulated clock: what had happened to the orders by then. A
    /// frozen clock (time_scale = 0) shows 09:00 the day after the period, the default; for a running
    /// clock give --at, or ask the serving simulator: GET /sim/truth answers at its clock.
    Truth {
        /// Per vendor and payment day, per order (shipping included), or per item (shipping excluded).
        #[arg(long, value_enum, default_value = "daily")]
        level: TruthLevel,
        /// The simulated moment, Asia/Seoul (e.g. 2026-10-15T18:00:00).
        #[arg(long)]
        at: Option<chrono::NaiveDateTime>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TruthLevel {
    Daily,
    Orders,
    Items,
}

fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COUPANG_ETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

/// Serves `/metrics` and `/health/*` for the commands that run stages, when configured (the default
/// is 127.0.0.1:9464). A port already taken stops the stage commands, and only warns for the demo.
async fn serve_metrics(config: &Config, command: &Command, shutdown: &Shutdown) -> Result<Option<SocketAddr>> {
    // The stages this command runs: readiness waits for every one of them.
    let stages: &[&'static str] = match command {
        Command::Demo(_) | Command::Run(_) => &["ingest", "transform", "load"],
        Command::Ingest(_) | Command::Backfill(_) => &["ingest"],
        Command::Transform => &["transform"],
        Command::Load => &["load"],
        _ => &[],
    };
    let Some(address) = config.observability.metrics_address()?.filter(|_| !stages.is_empty()) else {
        return Ok(None);
    };
    stages.iter().for_each(|stage| etl_core::metrics::metrics().register_stage(stage));
    let listener = match etl_core::metrics::bind(address).await {
        Ok(listener) => listener,
        Err(error) if matches!(command, Command::Demo(_)) => {
            tracing::warn!("{error}; the demo runs without it");
            return Ok(None);
        }
        Err(error) => bail!(error),
    };
    let bound = listener.local_addr()?;
    tracing::info!("metrics on http://{bound}/metrics, health on http://{bound}/health/ready");
    tokio::spawn(etl_core::metrics::serve(listener, shutdown.clone()));
    Ok(Some(bound))
}

/// A shutdown token cancelled by Ctrl-C or SIGTERM.
fn shutdown_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = async {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutting down: finishing the current batch");
        token.cancel();
    });
    shutdown
}

fn main() -> ExitCode {
    // A command line clap cannot parse exits here with clap's usage code, 2.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Outcome::Failure.into();
        }
    };
    // Library errors already carry their causes in their message: print it once, without a backtrace.
    match runtime.block_on(execute(cli)) {
        Ok(outcome) => outcome.into(),
        Err(error) => {
            eprintln!("error: {error}");
            outcome_of_error(&error).into()
        }
    }
}

/// The exit outcome of an error that ended a command: an interruption, or an account's own failure,
/// keep their codes; anything else is a failure.
fn outcome_of_error(error: &anyhow::Error) -> Outcome {
    if let Some(pipeline) = error.downcast_ref::<PipelineError>() {
        Outcome::of_pipeline_error(pipeline)
    } else if let Some(ingest) = error.downcast_ref::<IngestError>() {
        Outcome::of_ingest_error(ingest)
    } else {
        Outcome::Failure
    }
}

/// Prints the one-line summary of what went wrong (if anything) on stderr, and returns the outcome.
fn conclude(findings: &Findings) -> Outcome {
    if let Some(summary) = findings.summary() {
        eprintln!("{summary}");
    }
    findings.outcome()
}

/// What a range run found: per account from ingest's report, and the dead letters of the other stages.
fn run_findings(report: &pipeline::RunReport) -> Findings {
    let mut findings = Findings::of_ingest(&report.ingest);
    for (stage, records) in &report.stage_dead_letters {
        findings.dead_lettered_by_stage(stage, *records);
    }
    findings
}

/// Runs the command. Commands that end by themselves return how they ended (see `coupang_etl::exit`);
/// follow mode returns `Success` once a signal stopped it.
async fn execute(cli: Cli) -> Result<Outcome> {
    let config = Config::load(cli.config.as_deref())?;
    let quiet = matches!(cli.command, Command::Demo(_) | Command::Status | Command::Validate);
    init_logging(if quiet { "warn" } else { "info" }, config.observability.log_format);
    let shutdown = shutdown_on_signal();
    let metrics = serve_metrics(&config, &cli.command, &shutdown).await?;
    match cli.command {
        Command::Demo(args) => run_demo(config, args.database, metrics, &shutdown).await,
        Command::Validate => {
            // A config that does not load has already ended the command with 1, naming the setting.
            let origin = cli.config.as_deref().map_or_else(|| "(defaults)".into(), |p| p.display().to_string());
            println!("config {origin}: valid");
            print!("{}", config.describe(etl_core::time::now_kst().date_naive()));
            Ok(Outcome::Success)
        }
        Command::Status => {
            let report = coupang_etl::status::gather(&config).await;
            write_out(&report.render())?;
            Ok(conclude(&report.findings()))
        }
        Command::Run(range) => {
            require_accounts(&config)?;
            match (range.from, range.to) {
                (Some(from), Some(to)) => {
                    let report = pipeline::run_range(&config, from, to, &shutdown).await?;
                    write_out(&reports::ingest(&report.ingest))?;
                    println!("done in {:.1} s", report.elapsed.as_secs_f64());
                    Ok(conclude(&run_findings(&report)))
                }
                _ => {
                    let accounts = config.account_source(cli.config.as_deref());
                    pipeline::run_follow(&config, accounts, shutdown).await?;
                    Ok(Outcome::Success)
                }
            }
        }
        Command::Ingest(range) => {
            require_accounts(&config)?;
            match (range.from, range.to) {
                (Some(from), Some(to)) => {
                    let report = coupang_ingest::collect_range(
                        &config.ingest,
                        &config.kafka,
                        &config.accounts,
                        from,
                        to,
                        &shutdown,
                    )
                    .await?;
                    write_out(&reports::ingest(&report))?;
                    let mut findings = Findings::of_ingest(&report);
                    // Ingest returns what it collected when a signal stops it: say that it is incomplete.
                    findings.interrupted = shutdown.is_cancelled();
                    Ok(conclude(&findings))
                }
                _ => {
                    let accounts = config.account_source(cli.config.as_deref());
                    coupang_ingest::run(&config.ingest, &config.kafka, accounts, shutdown).await?;
                    Ok(Outcome::Success)
                }
            }
        }
        Command::Backfill(args) => run_backfill(&config, args, &shutdown).await,
        Command::Transform => {
            coupang_transform::run(&config.transform, &config.kafka, shutdown).await?;
            Ok(Outcome::Success)
        }
        Command::Load => {
            coupang_load::run(&config.load, &config.clickhouse, &config.kafka, shutdown).await?;
            Ok(Outcome::Success)
        }
        Command::Migrate => {
            let report = coupang_load::migrate(&config.clickhouse).await?;
            write_out(&reports::migration(&report, &config.clickhouse.url))?;
            Ok(Outcome::Success)
        }
        Command::Sim(args) => match args.command {
            Some(SimCommand::Truth { level, at }) => {
                let at = match at {
                    Some(at) => at.and_local_timezone(etl_core::time::kst()).single().context("--at")?,
                    None if config.sim.time_scale > 0.0 => anyhow::bail!(
                        "the simulated clock runs (sim.time_scale > 0): give --at, or GET /sim/truth from the serving simulator"
                    ),
                    None => coupang_sim::World::final_moment(&config.sim),
                };
                let truth = coupang_sim::truth::Truth::of(&coupang_sim::World::generate_at(&config.sim, at));
                write_out(&match level {
                    TruthLevel::Daily => truth.daily_csv(),
                    TruthLevel::Orders => truth.orders_csv(),
                    TruthLevel::Items => truth.items_csv(),
                })?;
                Ok(Outcome::Success)
            }
            None => {
                let listener = tokio::net::TcpListener::bind(args.listen)
                    .await
                    .with_context(|| format!("binding {}", args.listen))?;
                println!(
                    "Coupang API simulator on http://{}  (vendors: {})",
                    listener.local_addr()?,
                    vendor_list(&config)
                );
                println!("Point ingest.base_url at it; Ctrl-C stops it.");
                coupang_sim::serve(&config.sim, listener, shutdown).await?;
                Ok(Outcome::Success)
            }
        },
        // A listing: `status` is the check whose exit code says whether an account is stopped.
        Command::Accounts => {
            write_out(&reports::accounts_table(&config).await)?;
            Ok(Outcome::Success)
        }
        Command::Summary => {
            write_out(&reports::daily_summary(&coupang_load::summary::daily_payments(&config.clickhouse).await?))?;
            Ok(Outcome::Success)
        }
    }
}

async fn run_backfill(config: &Config, args: BackfillArgs, shutdown: &Shutdown) -> Result<Outcome> {
    use coupang_ingest::{BackfillProgress, Stream};
    let Some(account) = config.account(&args.account) else {
        bail!("no account with alias {:?} in the config", args.account);
    };
    if args.to < args.from {
        bail!("--to {} is before --from {}", args.to, args.from);
    }
    let streams: Vec<Stream> = if args.streams.is_empty() {
        vec![Stream::OrderSheets, Stream::ReturnRequests, Stream::Revenue]
    } else {
        args.streams.iter().map(|s| Stream::from(*s)).collect()
    };
    // A progress bar for people at a terminal; plain log lines for everything else.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} windows · {msg} · {elapsed_precise} elapsed, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::new(0).with_style(style).with_prefix(format!("backfill {}", account.alias))
    });
    let on_progress = |p: &BackfillProgress| match &bar {
        Some(bar) => {
            bar.set_length(p.windows_total);
            bar.set_position(p.windows_done);
            bar.set_message(format!("{} records", p.records));
        }
        None => tracing::info!(
            account = %account.alias, windows_done = p.windows_done, windows_total = p.windows_total,
            windows_resumed = p.windows_skipped, records = p.records, "backfill progress"
        ),
    };
    let range = (args.from, args.to);
    let backfilled =
        coupang_ingest::backfill(&config.ingest, &config.kafka, account, range, &streams, &on_progress, shutdown).await;
    if let Some(bar) = &bar {
        bar.finish();
    }
    let mut findings = Findings::default();
    // Ingest is the only stage of this process, so its dead-letter count is this backfill's.
    findings.dead_lettered_by_account(&account.alias, pipeline::dead_letters_sent("ingest"));
    let done = match backfilled {
        Ok(done) => done,
        Err(IngestError::Account { message, failure }) => {
            eprintln!("error: {message}");
            findings.account_failed(&account.alias, failure);
            return Ok(conclude(&findings));
        }
        Err(other) => return Err(other.into()),
    };
    findings.interrupted = done.windows_done < done.windows_total;
    let state = if findings.interrupted { "interrupted: run it again to resume" } else { "done" };
    println!(
        "backfill {} {}..{}: {}/{} windows ({} resumed from an earlier run), {} records; {state}",
        account.alias, args.from, args.to, done.windows_done, done.windows_total, done.windows_skipped, done.records
    );
    Ok(conclude(&findings))
}

/// Writes to stdout; a reader that went away (`| head`) ends the output quietly instead of panicking.
fn write_out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn vendor_list(config: &Config) -> String {
    config.sim.vendors.iter().map(|v| format!("{} key {}", v.vendor_id, v.access_key)).collect::<Vec<_>>().join(", ")
}

fn require_accounts(config: &Config) -> Result<()> {
    if config.accounts.is_empty() {
        bail!("no [[accounts]] configured: add your Coupang vendor accounts to the config file (see deploy/coupang-etl.example.toml)");
    }
    Ok(())
}

async fn run_demo(
    mut config: Config,
    database: Option<String>,
    metrics: Option<SocketAddr>,
    shutdown: &Shutdown,
) -> Result<Outcome> {
    // The demo keeps to its own database and topics, so it never mixes with real data.
    config.clickhouse.database = demo::database(database, &config.clickhouse.database);
    config.kafka.topic_prefix = "coupang-demo.".into();
    let _embedded = demo::embedded_kafka(&mut config)?;
    eprintln!(
        "Simulating {} vendors, {} to {}; ClickHouse at {}",
        config.sim.vendors.len(),
        config.sim.start_date,
        config.sim.end_date(),
        config.clickhouse.url
    );
    let database = config.clickhouse.database.clone();
    let outcome = demo::run(config, shutdown).await?;
    write_out(&demo::render(&outcome, &database))?;
    let mut after = format!("\n`coupang-etl status` (run it beside a running pipeline):\n{}", outcome.status.render());
    if let Some(address) = metrics {
        after.push_str(&format!(
            "\nMetrics were served at http://{address}/metrics and health at http://{address}/health/ready \
             while the pipeline ran (observability.metrics_listen).\n"
        ));
    }
    write_out(&after)?;
    if !outcome.mismatches.is_empty() {
        bail!("ClickHouse does not match the simulator's ground truth");
    }
    Ok(conclude(&run_findings(&outcome.report)))
}
