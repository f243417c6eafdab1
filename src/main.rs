//! `coupang-etl`: the binary only parses the command line and dispatches to the commands in the
//! library ([`coupang_etl::commands`]), which wire the stages' crates.

use clap::{Parser, Subcommand};
use coupang_etl::commands::backfill::BackfillArgs;
use coupang_etl::commands::changes::ChangesArgs;
use coupang_etl::commands::demo::DemoArgs;
use coupang_etl::commands::process::{self, Runs};
use coupang_etl::commands::reconcile::ReconcileArgs;
use coupang_etl::commands::sim::SimArgs;
use coupang_etl::commands::stages::RangeArgs;
use coupang_etl::commands::{self, CommandResult};
use coupang_etl::exit::Outcome;
use coupang_etl::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc rather than the system's malloc: the transform allocates ~23 times per event (the strings and
/// vectors of decoded events and states), and glibc's malloc and free were over a quarter of its CPU.
/// Measured in BENCHMARKS.md ("jemalloc"): more events per CPU-second for a little more memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Tie a month's payouts to revenue-history and our payments, per account, with every gap's reason
    ///
    /// Reads the `reconciliation` view: our payment facts paid in the month, Coupang's revenue-history
    /// recognised in it, and its payouts (settlement-histories) for it. A gap between the payouts and
    /// revenue-history has a named reason (not yet in a payout, reserve held back, seller service fee and
    /// other deductions, rounding of up to 1 won per payout) or is unexplained. Exits 7 when an account's
    /// month has an unexplained gap, naming it on stderr; 0 otherwise.
    Reconcile(ReconcileArgs),
    /// Why a payment day's numbers moved: each order's restatements with old and new amounts and cause
    ///
    /// Reads `payment_fact_history`: every version of the day's orders that changed an amount or added
    /// an order, in the order they were loaded (`--since`: only those loaded from that moment on, Korea
    /// time), with the cause the transform derived (NEW_ORDER, CONFIRMATION, CANCEL, RETURN, REFUND,
    /// WITHDRAWAL, STATUS, CORRECTION).
    Changes(ChangesArgs),
}

impl Command {
    /// The stages the command runs, for the metrics endpoint.
    fn runs(&self) -> Runs {
        match self {
            Command::Demo(_) => Runs::Demo,
            Command::Run(_) => Runs::Pipeline,
            Command::Ingest(_) | Command::Backfill(_) => Runs::Ingest,
            Command::Transform => Runs::Transform,
            Command::Load => Runs::Load,
            _ => Runs::NoStage,
        }
    }

    /// Commands whose output is for people log only warnings unless asked (`COUPANG_ETL_LOG`).
    fn is_quiet(&self) -> bool {
        matches!(self, Command::Demo(_) | Command::Status | Command::Validate)
    }
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
            error.outcome().into()
        }
    }
}

/// Loads the config, sets up logging, signals and metrics, and runs the command.
async fn execute(cli: Cli) -> CommandResult {
    let config = Config::load(cli.config.as_deref())?;
    process::init_logging(if cli.command.is_quiet() { "warn" } else { "info" }, config.observability.log_format);
    let shutdown = process::shutdown_on_signal();
    let metrics = process::serve_metrics(&config, cli.command.runs(), &shutdown).await?;
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Demo(args) => commands::demo::run(config, args, metrics, &shutdown).await,
        Command::Validate => commands::admin::validate(&config, config_path),
        Command::Status => commands::admin::status(&config).await,
        Command::Run(range) => commands::stages::run(&config, range, config_path, shutdown).await,
        Command::Ingest(range) => commands::stages::ingest(&config, range, config_path, shutdown).await,
        Command::Backfill(args) => commands::backfill::run(&config, args, &shutdown).await,
        Command::Transform => commands::stages::transform(&config, shutdown).await,
        Command::Load => commands::stages::load(&config, shutdown).await,
        Command::Migrate => commands::admin::migrate(&config).await,
        Command::Sim(args) => commands::sim::run(&config, args, shutdown).await,
        Command::Accounts => commands::admin::accounts(&config).await,
        Command::Summary => commands::admin::summary(&config).await,
        Command::Reconcile(args) => commands::reconcile::run(&config, args).await,
        Command::Changes(args) => commands::changes::run(&config, args).await,
    }
}
