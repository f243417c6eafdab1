//! No secret from the config ever reaches the process's output: the whole pipeline run as the real
//! binary with every log on (`trace`), one account with a wrong secret (the 401 path logs its error),
//! then `coupang-etl accounts`. Every secret and access key pair of the config is searched for.

mod common;

use common::*;
use coupang_sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output_even_at_trace_level() {
    let mut config = config("secrets", SimConfig { days: 3, orders_per_day: 15, ..small_world() });
    let sim = with_simulator(&mut config).await;
    // The third account's secret is wrong: its 401 is logged and reported, never with the secret.
    config.accounts[2].secret_key = etl_core::secret::Secret::new("wrong-secret-that-must-not-leak-7c1e");
    let secrets: Vec<String> = config.accounts.iter().map(|a| a.secret_key.expose().to_string()).collect();
    let file = write_config_file(&config, "secrets");
    let (from, to) = sim_range(&config);
    let (from, to) = (from.to_string(), to.to_string());
    let run = coupang_etl_command(&file)
        .args(["run", "--from", &from, "--to", &to])
        .env("COUPANG_ETL_LOG", "trace")
        .output()
        .unwrap();
    let accounts = coupang_etl_command(&file).arg("accounts").env("COUPANG_ETL_LOG", "trace").output().unwrap();
    let mut output = String::new();
    for out in [&run, &accounts] {
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        output.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(output.contains("401"), "the wrong secret was exercised:\n{}", tail(&output, 30));
    assert!(output.lines().count() > 1_000, "trace logging was on ({} lines)", output.lines().count());
    for secret in &secrets {
        assert!(!output.contains(secret.as_str()), "a secret leaked");
    }
    println!(
        "{} lines of output at trace level ({} bytes), none containing any of the {} secrets",
        output.lines().count(),
        output.len(),
        secrets.len()
    );
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_clickhouse_password_is_reported_without_the_password() {
    // The local server's `default` user has no password: one given anyway is refused (code 193 on
    // 18.16, 516 on current servers), and that error path is what must not repeat it.
    let mut config = config("chpassword", SimConfig { days: 1, ..small_world() });
    let password = "clickhouse-password-that-must-not-leak-5d2a";
    config.clickhouse.password = Some(etl_core::secret::Secret::new(password));
    let file = write_config_file(&config, "chpassword");
    let migrate = coupang_etl_command(&file).arg("migrate").env("COUPANG_ETL_LOG", "trace").output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&migrate.stdout), String::from_utf8_lossy(&migrate.stderr));
    assert!(!migrate.status.success(), "the password was refused:\n{}", tail(&output, 30));
    assert!(output.contains("password") || output.contains("Authentication"), "{}", tail(&output, 30));
    assert_no_secret_in(&output, &[password.to_string()], "migrate's output");
    println!("refused password reported as: {}", tail(&output, 30).lines().last().unwrap_or_default());
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}
