//! The log at the default level, against the real binary: a burst of
//! events makes a handful of lines (what changed, and a summary every
//! `log_summary_secs`), not a line per event; a dead letter and an outage
//! still show at once, with their reasons.

use crate::common::{eventually, Gateway, Party, PARTIES};
use deskbridge::event::Audience;
use deskbridge::tools::sample_desk::{Fault, SampleDesk};

const BURST: usize = 500;
const SUMMARY_SECS: u64 = 3;

/// The desk's ticket linked to `a`'s ticket `upstream`.
fn partner_ticket(desk: &SampleDesk, upstream: &str) -> Option<String> {
    desk.tickets()
        .into_iter()
        .find(|t| t.partner.as_ref().and_then(|p| p.1.as_deref()) == Some(upstream))
        .map(|t| t.id)
}

fn comments(desk: &SampleDesk, upstream: &str) -> usize {
    partner_ticket(desk, upstream)
        .and_then(|id| desk.ticket(&id))
        .map_or(0, |t| t.comments.len())
}

/// The figure `name=N` of each summary line about `dest`, summed.
fn summed(log: &str, dest: &str, name: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(&format!("summary: {dest}:")))
        .filter_map(|l| {
            let v = l.split(&format!(" {name}=")).nth(1)?;
            v.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_logs_a_few_lines_and_a_dead_letter_and_an_outage_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let a = Party::start("a").await;
    let b = Party::start("b").await;
    // The key lands in `[daemon]`, which the harness writes just before.
    let rest = format!(
        "log_summary_secs = {SUMMARY_SECS}\n{PARTIES}{}{}\n[[transfers]]\nfrom = \"a\"\nto = \"b\"\n",
        a.toml(dir.path(), "client", ""),
        b.toml(dir.path(), "svc", ""),
    );
    let started = std::time::Instant::now();
    let gw = Gateway::start_with(dir, &rest);
    a.connect(&gw);
    let settled = || async { a.desk.unsent() == 0 && gw.idle().await };

    // Two tickets handed over, then a burst of notes on the first.
    let t1 = a
        .desk
        .create_ticket("Till 1 does not print", "", &[], "alice");
    let t2 = a
        .desk
        .create_ticket("Till 2 does not print", "", &[], "alice");
    for i in 0..BURST {
        a.desk
            .comment(&t1, &format!("note {i}"), Audience::Partner, "alice", &[]);
    }
    eventually("the burst delivered", 120, || async {
        comments(&b.desk, &t1) == BURST && settled().await
    })
    .await;

    // A refusal: a dead letter, said at once with its reason and link.
    let refusal = "custom field 'store_code' is required";
    b.desk
        .set_fault(Some(Fault::Status(400, refusal.into())), Some(1));
    a.desk.comment(
        &t2,
        "printer head replaced?",
        Audience::Partner,
        "alice",
        &[],
    );
    eventually("a dead letter", 30, || async {
        gw.get("/dead").await.as_array().unwrap().len() == 1 && settled().await
    })
    .await;
    let link2 = gw.get("/dead").await[0]["link"]
        .as_str()
        .unwrap()
        .to_string();

    // An outage of three failed attempts: its start and its end are said.
    let down = "down for maintenance";
    b.desk
        .set_fault(Some(Fault::Status(503, down.into())), Some(3));
    a.desk.comment(
        &t1,
        "technician on the way",
        Audience::Partner,
        "alice",
        &[],
    );
    eventually("the note delivered after the outage", 60, || async {
        comments(&b.desk, &t1) == BURST + 1 && settled().await
    })
    .await;

    // The summaries count every delivery, retry and dead letter once:
    // both transfers, the burst and the last note.
    let delivered = (BURST + 3) as u64;
    eventually("the summaries count it all", 30, || async {
        let log = gw.log();
        summed(&log, "b", "delivered") == delivered
            && summed(&log, "b", "retried") == 3
            && summed(&log, "b", "dead_lettered") == 1
    })
    .await;
    let elapsed = started.elapsed().as_secs();
    let log = gw.log();
    let lines: Vec<&str> = log.lines().collect();

    let dead: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("dead letter"))
        .collect();
    assert_eq!(dead.len(), 1, "{log}");
    assert!(
        dead[0].contains(refusal) && dead[0].contains(&link2),
        "{log}"
    );
    let began: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("an outage begins"))
        .collect();
    assert_eq!(began.len(), 1, "{log}");
    assert!(began[0].contains(down) && began[0].contains("503"), "{log}");
    assert!(
        lines.iter().any(|l| l.contains("INFO")
            && l.contains("b answers again after")
            && l.contains("the outage is over (3 failed attempts")),
        "{log}"
    );

    // O(1) lines, not O(N): nothing per event, a summary per interval
    // at most, and a few lines for what changed.
    assert!(!log.contains(" accepted"), "{log}");
    assert!(!log.contains("delivered attempts"), "{log}");
    // (b, and a, which hears of b's ticket: one line each per summary.)
    let rounds = elapsed / SUMMARY_SECS + 1;
    for dest in ["a", "b"] {
        let n = lines
            .iter()
            .filter(|l| l.contains(&format!("summary: {dest}:")))
            .count() as u64;
        assert!(n <= rounds, "{elapsed} s:\n{log}");
    }
    let summaries = lines.iter().filter(|l| l.contains("summary: ")).count() as u64;
    let others = lines.len() as u64 - summaries;
    assert!(others <= 6, "{log}");
    assert!(lines.len() < 20 || elapsed > 20 * SUMMARY_SECS, "{log}");
    // Secrets never.
    for secret in [&a.in_secret, &a.out_secret, &b.in_secret, &b.out_secret] {
        assert!(!log.contains(secret.as_str()), "a secret in the log");
    }
}

/// A partner whose secret changed (or a stranger) sending all day: one
/// warning per kind of refusal, not a line per request.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_webhooks_is_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let a = Party::start("a").await;
    let b = Party::start("b").await;
    let rest = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"a\"\nto = \"b\"\n",
        a.toml(dir.path(), "client", ""),
        b.toml(dir.path(), "svc", ""),
    );
    let gw = Gateway::start_with(dir, &rest);
    let (_, wrong) = deskbridge::connector::webhook::sign::Secret::generate();
    for i in 0..50 {
        let r = crate::common::post_signed(
            &gw.hook_url("a"),
            &wrong,
            &format!("msg-{i}"),
            crate::common::now(),
            b"{}",
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let log = gw.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("rejected webhook"))
        .count();
    assert_eq!(warned, 1, "{log}");
    assert!(log.contains("matches any configured secret"), "{log}");
    assert!(!log.contains(&wrong), "a secret in the log");
}
