//! The RabbitMQ transport against the machine's broker (127.0.0.1:5672).

use crate::common::*;
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

/// `deskbridge bench --rate R` holds the rate: its events take at least
/// events / R seconds to send (pacing, not speed, is what is checked), and
/// the report says the rate it held.
#[test]
fn bench_holds_a_given_rate() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench", "--events", "200", "--links", "4", "--rate", "200", "--json",
        ])
        .env("DESKBRIDGE_BENCH_AMQP_URL", amqp_url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["rate"], 200.0, "{r}");
    // The last of 200 events is due at 199/200 s.
    assert!(r["seconds"].as_f64().unwrap() >= 0.99, "{r}");
    let (p50, p99) = (r["p50_ms"].as_f64().unwrap(), r["p99_ms"].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= p99, "{r}");
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

/// Runs `deskbridge run` on `config` until it exits by itself (within
/// `secs`); its exit status and what it wrote to stderr.
fn run_until_exit(config: &std::path::Path, secs: u64) -> (std::process::ExitStatus, String) {
    let (child, err) = run_second(config);
    wait_exit(child, err, secs)
}

/// Starts `deskbridge run` on `config`; its stderr goes to the file.
fn run_second(config: &std::path::Path) -> (std::process::Child, tempfile::NamedTempFile) {
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("DESKBRIDGE_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    (child, err)
}

fn wait_exit(
    mut child: std::process::Child,
    err: tempfile::NamedTempFile,
    secs: u64,
) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the second deskbridge did not exit:\n{}",
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(err.path()).unwrap())
}

/// The same config with its own data_dir and ports: a copy on a second
/// machine.
fn copied(dir: &std::path::Path, conf: &str) -> std::path::PathBuf {
    let config = dir.join("copy.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n{conf}",
            dir.join("copy-data").display(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    config
}

/// The notes on b's copy of `t`, in the order they landed.
fn notes_at_b(b: &Party) -> Vec<String> {
    b.desk
        .tickets()
        .first()
        .map(|t| t.comments.iter().map(|c| c.body.clone()).collect())
        .unwrap_or_default()
}

/// A second deskbridge with the same bus prefix (a copied config on a
/// second machine) is refused at start, with a message that names what to
/// change, before it consumes, publishes or takes anything; the first
/// goes on and delivers every note once, in order. Before this, the
/// second one's consumer waited behind the first, its publisher sent its
/// events to the first one's relay, which stopped the first daemon (exit
/// 3, "link … is missing"), and then the second took the first one's
/// events the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_on_the_same_prefix_is_refused_and_the_first_goes_on() {
    let (a, b, dir, prefix, conf) = two_parties().await;
    let second_dir = tempfile::tempdir().unwrap();
    let second = copied(second_dir.path(), &conf);
    let mut gw = Gateway::start_with(dir, &conf);
    a.connect(&gw);
    b.connect(&gw);
    let t = a.desk.create_ticket("Scale drifts", "Till 3", &[], "Ann");
    let note = |i: usize| format!("note {i:03}");
    for i in 0..10 {
        a.desk.comment(&t, &note(i), Audience::Partner, "Ann", &[]);
    }
    eventually("the first notes at b", 30, || async {
        notes_at_b(&b).len() == 10
    })
    .await;

    // Notes keep coming while the second one tries to start.
    let (status, stderr) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let second = s.spawn(|| run_until_exit(&second, 60));
            for i in 10..40 {
                a.desk.comment(&t, &note(i), Audience::Partner, "Ann", &[]);
            }
            second.join().unwrap()
        })
    });
    assert!(!status.success(), "{status}\n{stderr}");
    for what in [
        format!("another deskbridge consumes queue {prefix}."),
        "bus.prefix".to_string(),
    ] {
        assert!(stderr.contains(&what), "no {what:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("deskbridge running"), "{stderr}");

    eventually("every note at b", 30, || async {
        notes_at_b(&b).len() >= 40 && gw.idle().await
    })
    .await;
    let expected: Vec<String> = (0..40).map(note).collect();
    assert_eq!(notes_at_b(&b), expected, "each note once, in order");
    assert!(
        gw.exited().is_none(),
        "the first daemon stopped:\n{}",
        gw.log()
    );
    let s = gw.status().await;
    assert_eq!(s["broker"]["connected"], true, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    for d in ["a", "b"] {
        assert!(s["destinations"][d]["foreign"].is_null(), "{s}");
    }
    // The second one took nothing: its outbox and links are empty.
    let out = std::process::Command::new(BIN)
        .args(["links", "--json", "--config"])
        .arg(&second)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(links.as_array().map(|l| l.len()), Some(0), "{links}");

    // The probe says who holds the queues.
    let out = std::process::Command::new(BIN)
        .args(["probe", "--bus", "--config"])
        .arg(&second)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "ok   queue {prefix}.b: held by a running deskbridge"
        )),
        "{text}"
    );
    drop(gw);
    deskbridge::bus::amqp::remove_topology(&amqp_url(), &prefix, &["a", "b"]).await;
}

/// A message in a destination's queue for a link this deskbridge does not
/// know (another deskbridge's, here published by hand with a seq of its
/// own store that equals one of ours) goes to the broker's dead-letter
/// queue of that destination, is counted and logged; the daemon does not
/// stop (before, exit 3), and its own events go on, each once.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_for_an_unknown_link_goes_to_the_dead_letter_queue() {
    use deskbridge::bus::amqp::{on_tokio, Topology};
    use deskbridge::event::{Event, EventKind};
    use deskbridge::store::{Envelope, QueueKey};
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    let (a, b, dir, prefix, conf) = two_parties().await;
    let mut gw = Gateway::start_with(dir, &conf);
    a.connect(&gw);
    b.connect(&gw);
    let t = a.desk.create_ticket("Lift stuck", "Floor 2", &[], "Ann");
    a.desk.comment(&t, "first", Audience::Partner, "Ann", &[]);
    eventually("the first note at b", 30, || async {
        notes_at_b(&b) == ["first"]
    })
    .await;

    let theirs = Envelope {
        link_id: uuid::Uuid::now_v7(),
        dest: "b".into(),
        origin: "a".into(),
        event: Event::new(
            "T-9",
            EventKind::FieldChanged {
                field: "site".into(),
                value: "elsewhere".into(),
            },
        ),
        accepted_at: None,
        after: None,
    };
    let topology = Topology {
        prefix: prefix.clone(),
    };
    let conn = lapin::Connection::connect(&amqp_url(), on_tokio())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let key = QueueKey {
        dest: "b".into(),
        seq: 1,
    };
    let confirm = ch
        .basic_publish(
            &topology.exchange(),
            "b",
            BasicPublishOptions::default(),
            &serde_json::to_vec(&theirs).unwrap(),
            lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(key.id().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let dead_copies = || async {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        ch.queue_declare(&topology.dead_queue("b"), passive, Default::default())
            .await
            .unwrap()
            .message_count()
    };
    eventually("it is in the dead-letter queue", 30, || async {
        dead_copies().await == 1
    })
    .await;
    eventually("counted", 10, || async {
        gw.status().await["destinations"]["b"]["foreign"] == 1
    })
    .await;
    a.desk.comment(&t, "second", Audience::Partner, "Ann", &[]);
    eventually("the second note at b", 30, || async {
        notes_at_b(&b).len() == 2 && gw.idle().await
    })
    .await;
    assert_eq!(notes_at_b(&b), ["first", "second"]);
    assert!(gw.exited().is_none(), "the daemon stopped:\n{}", gw.log());
    assert!(
        gw.log().contains("a link this deskbridge does not know"),
        "{}",
        gw.log()
    );
    let text = String::from_utf8(gw.cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains("1 messages for links this deskbridge does not know"),
        "{text}"
    );
    assert_eq!(gw.status().await["dead_letters"], 0);
    let _ = conn.close(200, "done").await;
    drop(gw);
    deskbridge::bus::amqp::remove_topology(&amqp_url(), &prefix, &["a", "b"]).await;
}

/// A second deskbridge that starts while the broker is out of its reach
/// starts (ingest does not wait for the broker), and once the broker is
/// there, it is refused, stops cleanly and exits non-zero, saying what to
/// change; the first one goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_that_meets_the_broker_late_is_refused_then() {
    let (a, b, dir, prefix, conf) = two_parties().await;
    let second_dir = tempfile::tempdir().unwrap();
    // Its way to the broker: a port where nothing listens yet.
    let port = free_port();
    let url_file = second_dir.path().join("amqp.url");
    std::fs::write(
        &url_file,
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
    )
    .unwrap();
    let second_conf = conf.replace(
        "url = { env = \"DESKBRIDGE_TEST_AMQP_URL\" }",
        &format!("url = {{ file = \"{}\" }}", url_file.display()),
    );
    assert_ne!(second_conf, conf);
    let second = copied(second_dir.path(), &second_conf);
    let mut gw = Gateway::start_with(dir, &conf);
    a.connect(&gw);
    b.connect(&gw);
    let t = a
        .desk
        .create_ticket("Terminal offline", "Shop 12", &[], "Ann");
    a.desk.comment(&t, "first", Audience::Partner, "Ann", &[]);

    let (child, err) = run_second(&second);
    eventually(
        "the second one runs, waiting for the broker",
        30,
        || async {
            std::fs::read_to_string(err.path())
                .unwrap_or_default()
                .contains("deskbridge running")
        },
    )
    .await;
    // The broker comes within its reach.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let upstream = amqp_url()
        .parse::<lapin::uri::AMQPUri>()
        .map(|u| (u.authority.host, u.authority.port))
        .unwrap();
    let relay = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    let (status, stderr) = tokio::task::block_in_place(|| wait_exit(child, err, 60));
    relay.abort();
    assert!(!status.success(), "{status}\n{stderr}");
    assert!(
        stderr.contains(&format!("another deskbridge consumes queue {prefix}."))
            && stderr.contains("bus.prefix"),
        "{stderr}"
    );
    assert!(stderr.contains("stopping"), "{stderr}");

    a.desk.comment(&t, "second", Audience::Partner, "Ann", &[]);
    eventually("both notes at b", 30, || async {
        notes_at_b(&b).len() == 2 && gw.idle().await
    })
    .await;
    assert_eq!(notes_at_b(&b), ["first", "second"]);
    assert!(
        gw.exited().is_none(),
        "the first daemon stopped:\n{}",
        gw.log()
    );
    drop(gw);
    deskbridge::bus::amqp::remove_topology(&amqp_url(), &prefix, &["a", "b"]).await;
}
