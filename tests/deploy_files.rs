//! The deploy files are checked by what runs here: every config they carry passes the real binary's
//! `validate` (with the environment they give it), the systemd units pass `systemd-analyze verify`, the
//! Kubernetes manifests are consistent with their configs (ports, probes, replicas within partitions,
//! secrets present), and the Grafana dashboard queries only metrics the processes export.
//! No services needed.

mod common;

use common::{coupang_etl_command, COUPANG_ETL};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `coupang-etl --config <file> validate` with exactly `env` (plus PATH); its stdout.
fn validate(file: &Path, env: &BTreeMap<String, String>) -> String {
    let output = coupang_etl_command(file)
        .arg("validate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{} does not validate: {stderr}", file.display());
    for secret in env.iter().filter(|(name, _)| !name.starts_with("COUPANG_ETL__")).map(|(_, v)| v) {
        assert!(!stdout.contains(secret.as_str()), "validate printed a secret:\n{stdout}");
    }
    stdout.into_owned()
}

/// `KEY=value` lines (an EnvironmentFile, or the values of `Environment=` lines).
fn env_lines<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_example_config_validates_and_describes_itself_without_secrets() {
    let env = BTreeMap::from([("COUPANG_SECRET_BRAND_A".to_string(), "s3cr3t-value-a".to_string())]);
    let out = validate(&repo("deploy/coupang-etl.example.toml"), &env);
    assert!(out.contains("account        brand-a (vendor A00012345)"), "{out}");
    assert!(out.contains("metrics http://127.0.0.1:9464/metrics"), "{out}");

    // A missing secret or a wrong setting is refused, naming it.
    let output = coupang_etl_command(&repo("deploy/coupang-etl.example.toml"))
        .arg("validate")
        .env_remove("COUPANG_SECRET_BRAND_A")
        .env("COUPANG_ETL__OBSERVABILITY__METRICS_LISTEN", "localhost")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("COUPANG_SECRET_BRAND_A") || error.contains("metrics_listen"), "{error}");
}

#[test]
fn systemd_units_verify_and_their_configs_validate() {
    let dir = repo("deploy/systemd");
    let secrets = env_lines(std::fs::read_to_string(dir.join("secrets.env.example")).unwrap().lines());
    let mut ports = BTreeSet::new();
    let scratch = std::env::temp_dir().join(format!("coupang-etl-units-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    for stage in ["ingest", "transform", "load"] {
        let name = format!("coupang-etl-{stage}.service");
        let unit = std::fs::read_to_string(dir.join(&name)).unwrap();
        let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
        assert_eq!(exec, format!("/usr/local/bin/coupang-etl --config /etc/coupang-etl/coupang-etl.toml {stage}"));
        assert!(
            unit.contains("WantedBy=coupang-etl.target")
                && unit.contains("EnvironmentFile=-/etc/coupang-etl/secrets.env")
        );
        // The unit's own variables, over the secrets file, given to the real binary with the shipped config.
        let mut env = secrets.clone();
        env.extend(env_lines(unit.lines().filter_map(|l| l.strip_prefix("Environment="))));
        let port = env["COUPANG_ETL__OBSERVABILITY__METRICS_LISTEN"].clone();
        assert!(ports.insert(port.clone()), "{stage} shares metrics port {port}");
        let out = validate(&dir.join("coupang-etl.toml"), &env);
        assert!(out.contains(&format!("metrics http://{port}/metrics")), "{out}");
        assert!(out.contains("Json logs"), "{out}");
        // systemd's own check, with the binary path pointed at one that exists here.
        let runnable = unit.replace("/usr/local/bin/coupang-etl", COUPANG_ETL);
        std::fs::write(scratch.join(&name), runnable).unwrap();
    }
    std::fs::copy(dir.join("coupang-etl.target"), scratch.join("coupang-etl.target")).unwrap();
    match Command::new("systemd-analyze")
        .current_dir(&scratch)
        .arg("verify")
        .args(["ingest", "transform", "load"].map(|s| format!("./coupang-etl-{s}.service")))
        .output()
    {
        Ok(output) => {
            let complaints = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success() && !complaints.contains("coupang-etl"), "systemd-analyze: {complaints}");
            println!("systemd-analyze verify: 3 units clean");
        }
        Err(_) => println!("systemd-analyze not installed: units checked by the parse above only"),
    }
    std::fs::remove_dir_all(&scratch).ok();
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect()
}

use serde::Deserialize;

fn str_of<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(value, |v, key| &v[*key]).as_str().unwrap_or_else(|| panic!("{path:?} in {value:?}"))
}

#[test]
fn kubernetes_manifests_agree_with_their_configs() {
    let dir = repo("deploy/k8s");
    let kustomization = &yaml_docs(&dir.join("kustomization.yaml"))[0];
    let resources: Vec<&str> =
        kustomization["resources"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    let config_map = &yaml_docs(&dir.join("configmap.yaml"))[0];
    let secret = &yaml_docs(&dir.join("secret.example.yaml"))[0];
    let secret_values: BTreeMap<String, String> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
        .collect();
    let scratch = std::env::temp_dir().join(format!("coupang-etl-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    // The two config files agree on Kafka and ClickHouse.
    let section = |file: &str, name: &str| -> toml::Value {
        let text = str_of(config_map, &["data", file]);
        text.parse::<toml::Table>().unwrap()[name].clone()
    };
    for name in ["kafka", "clickhouse", "observability"] {
        assert_eq!(section("pipeline.toml", name), section("ingest.toml", name), "[{name}] differs");
    }
    assert!(!str_of(config_map, &["data", "pipeline.toml"]).contains("[[accounts]]"), "accounts only for ingest");
    let partitions = section("pipeline.toml", "kafka")["partitions"].as_integer().unwrap();

    let mut workloads = 0;
    for resource in &resources {
        for doc in yaml_docs(&dir.join(resource)) {
            let kind = str_of(&doc, &["kind"]).to_string();
            let pod = match kind.as_str() {
                "Deployment" | "Job" => &doc["spec"]["template"]["spec"],
                _ => continue,
            };
            workloads += 1;
            let container = &pod["containers"][0];
            let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
            let [flag, file, command] = args[..] else { panic!("{resource}: args {args:?}") };
            assert_eq!(flag, "--config");
            let key = file.strip_prefix("/etc/coupang-etl/").unwrap();
            // Every variable the pod gets, secrets resolved from the example Secret.
            let mut env = BTreeMap::new();
            for var in container["env"].as_sequence().into_iter().flatten() {
                let name = str_of(var, &["name"]).to_string();
                let value = match var["value"].as_str() {
                    Some(value) => value.to_string(),
                    None => {
                        let secret_key = str_of(var, &["valueFrom", "secretKeyRef", "key"]);
                        secret_values
                            .get(secret_key)
                            .unwrap_or_else(|| panic!("{resource}: no {secret_key} in the Secret"))
                            .clone()
                    }
                };
                env.insert(name, value);
            }
            let path = scratch.join(key);
            std::fs::write(&path, str_of(config_map, &["data", key])).unwrap();
            let out = validate(&path, &env);
            if kind == "Deployment" {
                assert_eq!(command, str_of(&doc, &["metadata", "labels", "app.kubernetes.io/component"]));
                assert!(out.contains("metrics http://0.0.0.0:9464/metrics"), "{resource}: {out}");
                assert_eq!(container["ports"][0]["containerPort"].as_i64(), Some(9464), "{resource}");
                assert_eq!(str_of(container, &["livenessProbe", "httpGet", "path"]), "/health/live");
                assert_eq!(str_of(container, &["readinessProbe", "httpGet", "path"]), "/health/ready");
                let replicas = doc["spec"]["replicas"].as_i64().unwrap();
                assert!(replicas <= partitions, "{resource}: {replicas} replicas for {partitions} partitions");
                if command == "ingest" {
                    assert_eq!(str_of(&doc, &["spec", "strategy", "type"]), "Recreate", "one ingest per accounts");
                    assert!(out.contains("account        brand-a"), "{out}");
                } else {
                    assert!(!env.keys().any(|k| k.starts_with("COUPANG_SECRET")), "{resource} gets no Coupang secret");
                }
            } else {
                assert_eq!(command, "migrate");
            }
        }
    }
    assert_eq!(workloads, 4, "ingest, transform, load and the migrate job");
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let text = std::fs::read_to_string(repo("deploy/grafana/coupang-etl.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Families render once they have a sample: give each one.
    use etl_core::metrics::{metrics, AccountLabel, ApiCall, StageLabel, StageTopic};
    let m = metrics();
    let (account, stage) = (AccountLabel { account: "a".into() }, StageLabel { stage: "load" });
    m.record_in("load", "a", 1);
    m.record_out("load", "a", 1);
    m.api_calls.get_or_create(&ApiCall { account: "a".into(), endpoint: "ordersheets", status: "200".into() }).inc();
    m.rate_limit_wait_seconds.get_or_create(&account).inc();
    m.consumer_lag.get_or_create(&StageTopic { stage: "load", topic: "t".into() }).set(1);
    m.batch("load", 1, std::time::Instant::now());
    m.key_days_left.get_or_create(&account).set(1);
    m.newest_change_loaded.get_or_create(&account).set(1);
    m.dead_letters.get_or_create(&stage).inc();
    m.restarts.get_or_create(&stage).inc();
    m.stage_ready.get_or_create(&stage).set(1);
    let exported = m.render();
    let mut checked = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("coupang_etl_"))
            {
                let family =
                    ["_total", "_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(
                    exported.contains(&format!("# TYPE {family} ")),
                    "{name} (panel {:?}) is not exported",
                    panel["title"]
                );
                checked.insert(family.to_string());
            }
        }
    }
    assert!(checked.len() >= 10, "{checked:?}");
    println!(
        "grafana: {} panels over {} metric families",
        dashboard["panels"].as_array().unwrap().len(),
        checked.len()
    );
}
