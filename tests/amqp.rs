//! The RabbitMQ transport against the machine's broker (127.0.0.1:5672).
mod common;

use common::*;
use deskbridge::event::Audience;

fn bus(prefix: &str) -> String {
    format!(
        "\n[bus]\nkind = \"amqp\"\nurl = {{ env = \"DESKBRIDGE_TEST_AMQP_URL\" }}\nprefix = \"{prefix}\"\n"
    )
}

pub fn amqp_url() -> String {
    std::env::var("DESKBRIDGE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Parties a and b, a temporary directory, a fresh prefix, and the config
/// with a transfer from a to b over the machine's broker.
async fn two_parties() -> (Party, Party, tempfile::TempDir, String, String) {
    std::env::set_var("DESKBRIDGE_TEST_AMQP_URL", amqp_url());
    let a = Party::start("a").await;
    let b = Party::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("dbtest-{}", uuid::Uuid::now_v7().simple());
    let conf = format!(
        "{}{PARTIES}{}{}\n[[transfers]]\nfrom = \"a\"\nto = \"b\"\n",
        bus(&prefix),
        a.toml(dir.path(), "svc", ""),
        b.toml(dir.path(), "vendor", "")
    );
    (a, b, dir, prefix, conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_cross_through_rabbitmq_in_order_both_ways() {
    let (a, b, dir, prefix, conf) = two_parties().await;
    let mut gw = Gateway::start_with(dir, &conf);
    a.connect(&gw);
    b.connect(&gw);
    let t = a.desk.create_ticket("Printer jam", "Tray 2", &[], "Ann");
    for i in 0..50 {
        a.desk
            .comment(&t, &format!("note {i:03}"), Audience::Partner, "Ann", &[]);
    }
    eventually("all notes at b", 30, || async {
        b.desk
            .tickets()
            .first()
            .is_some_and(|t| t.comments.len() == 50)
    })
    .await;
    let bt = b.desk.tickets().remove(0);
    let bodies: Vec<String> = bt.comments.iter().map(|c| c.body.clone()).collect();
    let expected: Vec<String> = (0..50).map(|i| format!("note {i:03}")).collect();
    assert_eq!(bodies, expected);
    b.desk.comment(&bt.id, "on it", Audience::Public, "Bo", &[]);
    eventually("reply at a", 20, || async {
        a.desk
            .ticket(&t)
            .unwrap()
            .comments
            .iter()
            .any(|c| c.body == "on it")
    })
    .await;
    let s = gw.status().await;
    assert_eq!(s["broker"]["connected"], true, "{s}");
    assert!(s["broker"]["published"].as_u64().unwrap() >= 52, "{s}");
    // A clean stop pages nobody: nothing logged at ERROR (lapin logged
    // "invalid channel state: Closing" when a channel closed itself on
    // drop while its connection was closing).
    let status = gw.terminate();
    let log = gw.log();
    assert!(status.success(), "{status}:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "ERROR lines on a clean stop:\n{}",
        errors.join("\n")
    );
    drop(gw);
    deskbridge::bus::amqp::remove_topology(&amqp_url(), &prefix, &["a", "b"]).await;
}

/// `deskbridge bench` end to end on both buses, small: the figures it
/// prints are there and agree with each other (speed is not asserted).
#[test]
fn bench_prints_one_consistent_report_per_bus() {
    for bus in ["amqp", "embedded"] {
        let out = std::process::Command::new(BIN)
            .args([
                "bench", "--bus", bus, "--events", "300", "--links", "4", "--json",
            ])
            .env("DESKBRIDGE_BENCH_AMQP_URL", amqp_url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{bus}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["bus"], bus, "{r}");
        assert_eq!(r["events"], 300, "{r}");
        let eps = r["events_per_s"].as_f64().unwrap();
        let base = r["baseline_events_per_s"].as_f64().unwrap();
        assert!(eps > 0.0 && base > 0.0, "{r}");
        let ratio = r["ratio"].as_f64().unwrap();
        assert!((ratio - eps / base).abs() < 1e-9, "{r}");
        let (p50, p99) = (r["p50_ms"].as_f64().unwrap(), r["p99_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99, "{r}");
        assert!(r["cpu_us_per_event"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["rss_peak_mib"].as_f64().unwrap() > 1.0, "{r}");
        assert!(r["baseline_rss_peak_mib"].as_f64().unwrap() > 1.0, "{r}");
    }
}

/// `deskbridge probe --bus` before and while the daemon runs, and with a
/// wrong password: reads only, and never prints the password.
#[tokio::test(flavor = "multi_thread")]
async fn probe_bus_reaches_the_broker_and_reads_the_topology() {
    let (_a, _b, dir, prefix, conf) = two_parties().await;
    let config = dir.path().join("probe.toml");
    std::fs::write(&config, &conf).unwrap();
    let probe = |config: &std::path::Path, url: &str| {
        let out = std::process::Command::new(BIN)
            .args(["probe", "--bus", "--config"])
            .arg(config)
            .env("DESKBRIDGE_TEST_AMQP_URL", url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    // Before any daemon: reachable, nothing declared (and the probe
    // declares nothing).
    let (ok, text) = probe(&config, &amqp_url());
    assert!(ok, "{text}");
    assert!(text.contains("ok   connected and logged in"), "{text}");
    assert!(
        text.contains(&format!("{prefix}.b: not declared yet")),
        "{text}"
    );
    let (ok, text) = probe(&config, &amqp_url());
    assert!(ok && text.contains("not declared yet"), "{text}");

    let gw = Gateway::start_with(dir, &conf);
    // The daemon's consumers register a moment after it connects.
    let consumer = format!("ok   queue {prefix}.b: 0 messages ready, 1 consumers");
    eventually("the probe sees the daemon's consumer", 30, || async {
        tokio::task::block_in_place(|| probe(&gw.config, &amqp_url()).1.contains(&consumer))
    })
    .await;
    let (ok, text) = probe(&gw.config, &amqp_url());
    eprintln!("{text}");
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("ok   exchange {prefix}.events")),
        "{text}"
    );
    assert!(text.contains(&consumer), "{text}");
    assert!(
        text.contains(&format!("ok   queue {prefix}.b.dead: 0 dead-letter copies")),
        "{text}"
    );
    assert!(
        text.contains("at amqp://guest@127.0.0.1:5672/%2f"),
        "{text}"
    );

    let wrong = amqp_url().replace("guest:guest", "guest:not-the-password");
    let (ok, text) = probe(&gw.config, &wrong);
    assert!(!ok, "{text}");
    eprintln!("{text}");
    assert!(text.contains("FAIL connect:"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    drop(gw);
    deskbridge::bus::amqp::remove_topology(&amqp_url(), &prefix, &["a", "b"]).await;
}
