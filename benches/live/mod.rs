//! The transform over a live stream: its process runs while the dumped events are produced at a steady
//! rate in the order they happened (`--from-dump FILE --copies N --live EVENTS_PER_S`), rather than
//! over a backlog, which it reads topic beside topic, whatever the events' order. Counts the process's
//! CPU from the moment it is ready until its group has no lag (the waits between batches included, as
//! a deployment that keeps up spends them), and the facts it sent.

use coupang_etl::Config;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{
    cpu_and_peak, delete_topics, event_copy, facts_in, lag_of, read_events, sort_by_source_time, stage, stage_metric,
    stage_metrics, wait_until_ready, write_config,
};

/// What `--live` runs: the dump, its copies and the rate they are produced at.
pub struct LiveArgs {
    pub path: std::path::PathBuf,
    pub copies: u32,
    pub events_per_s: u64,
}

pub async fn run(config: &Config, args: LiveArgs) {
    let topics = config.kafka.topics();
    let mut events = read_events(&args.path);
    sort_by_source_time(&mut events);
    // The copies side by side: each event of the stream, in each copy's vendors, then the next.
    let records: Vec<_> =
        events.iter().flat_map(|event| (0..args.copies).filter_map(|copy| event_copy(&topics, event, copy))).collect();
    drop(events);

    let file = write_config(config);
    let mut child = stage(&file, "transform", &stage_metrics(0));
    wait_until_ready("transform", 0, Instant::now()).await;
    let (cpu_at_start, _) = cpu_and_peak(child.id());

    let producer: FutureProducer = config.kafka.producer_config().create().expect("producer");
    let started = Instant::now();
    let mut sent = 0usize;
    // A tenth of a second's worth at a time, each on time.
    for chunk in records.chunks((args.events_per_s as usize / 10).max(1)) {
        let deliveries = chunk.iter().map(|(topic, key, bytes)| {
            producer.send(FutureRecord::to(topic).key(key).payload(bytes), Duration::from_secs(120))
        });
        for delivery in futures::future::join_all(deliveries).await {
            delivery.map_err(|(e, _)| e).expect("produce an event");
        }
        sent += chunk.len();
        let due = started + Duration::from_secs_f64(sent as f64 / args.events_per_s as f64);
        tokio::time::sleep_until(due.into()).await;
    }
    let produced = started.elapsed().as_secs_f64();
    let raw = topics.raw();
    let (cpu, peak_mib) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let lag = lag_of(config, &config.transform.group_id, &raw).await;
        let usage = cpu_and_peak(child.id());
        if lag == 0 {
            break usage;
        }
        assert!(child.try_wait().ok().flatten().is_none(), "the transform exited early");
        assert!(started.elapsed() < Duration::from_secs(3_600), "the transform did not catch up within an hour");
    };
    let caught_up = started.elapsed().as_secs_f64();
    // What the process read and wrote through system calls (the state file's pages, mostly).
    let io = std::fs::read_to_string(format!("/proc/{}/io", child.id())).unwrap_or_default();
    let io_field =
        |name: &str| io.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0);
    let (read_mb, written_mb) = (io_field("rchar:") / 1e6, io_field("wchar:") / 1e6);
    let (reads, writes) = (io_field("syscr:"), io_field("syscw:"));
    let batches = stage_metric(1, "coupang_etl_batch_records_count").await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let (facts, _) = tokio::task::spawn_blocking({
        let (kafka, topic) = (config.kafka.clone(), topics.payment_facts.clone());
        move || facts_in(&kafka, &topic)
    })
    .await
    .expect("facts read");
    let _ = std::fs::remove_dir_all(config.transform.state_dir.join(&topics.transform_state));
    let _ = std::fs::remove_file(&file);
    delete_topics(config).await;

    let cpu = cpu - cpu_at_start;
    println!(
        "coupang-etl live transform benchmark: {} events ({} dumped × {} copies) at {} events/s in source-time order{}",
        sent,
        records.len() / args.copies.max(1) as usize,
        args.copies,
        args.events_per_s,
        if config.transform.transactions { ", transform in transactions" } else { "" }
    );
    println!(
        "  transform     produced in {produced:.1} s, caught up {:.1} s after the last; {:.0} events/CPU-s ({cpu:.2} CPU-s, waits between batches included); {facts} facts ({:.2} per event); {batches:.0} batches of {:.0} on average; peak RSS {peak_mib:.0} MiB; system calls read {read_mb:.0} MB in {reads:.0}, wrote {written_mb:.0} MB in {writes:.0}",
        caught_up - produced,
        sent as f64 / cpu.max(1e-3),
        facts as f64 / sent.max(1) as f64,
        sent as f64 / batches.max(1.0)
    );
}
