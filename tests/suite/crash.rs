//! The crash test: while 1,000 events stream down two links (and some
//! replies stream back up), the daemon is killed with SIGKILL at random
//! moments and restarted. At the end every event has been applied at its
//! destination exactly once, counted at the destination, and in order per
//! link.
//!
//! `CRASH_SEED=<n>` repeats one run's kill delays (where they land in the
//! stream still depends on timing).

use crate::common::{eventually, Gateway, Party, PARTIES};
use deskbridge::event::Audience;
use deskbridge::tools::sample_desk::{DeskTicket, SampleDesk};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Comments sent down each of the two links (2 × 500 = 1,000 events).
const DOWN_PER_LINK: usize = 500;
/// Replies sent back up each link, one every `DOWN_PER_LINK / UP_PER_LINK`
/// comments down.
const UP_PER_LINK: usize = 100;
const MIN_KILLS: u32 = 3;
const MAX_KILLS: u32 = 12;

/// What deskbridge wrote into a ticket (the desk's own comments have no
/// event), as the desk's staff see it, in the order it was applied.
fn relayed(t: &DeskTicket) -> Vec<(String, Audience)> {
    t.comments
        .iter()
        .filter(|c| c.event.is_some())
        .map(|c| (c.body.clone(), c.audience))
        .collect()
}

fn relayed_count(desk: &SampleDesk, ticket: &str) -> usize {
    desk.ticket(ticket).map(|t| relayed(&t).len()).unwrap_or(0)
}

/// Checks that the relayed comments are exactly `{prefix} #0000 ..` up to
/// `n`, each once and in order, landed with `audience`.
fn assert_exactly_once_in_order(
    desk: &SampleDesk,
    ticket: &str,
    prefix: &str,
    n: usize,
    audience: Audience,
) {
    let t = desk.ticket(ticket).expect("ticket exists");
    let got = relayed(&t);
    let mut seen = vec![0u32; n];
    let mut order = Vec::with_capacity(got.len());
    for (body, aud) in &got {
        assert_eq!(*aud, audience, "{}: {body:?} landed as {aud:?}", desk.name);
        let num: usize = body
            .strip_prefix(&format!("{prefix} #"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{}: unexpected comment {body:?}", desk.name));
        assert!(num < n, "{}: {body:?} out of range", desk.name);
        seen[num] += 1;
        order.push(num);
    }
    let missing: Vec<usize> = (0..n).filter(|i| seen[*i] == 0).collect();
    let doubled: Vec<usize> = (0..n).filter(|i| seen[*i] > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "{} #{ticket} ({prefix}): {} comments; missing {missing:?}, doubled {doubled:?}",
        desk.name,
        got.len()
    );
    let out_of_order: Vec<(usize, usize)> = order
        .windows(2)
        .filter(|w| w[0] >= w[1])
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        out_of_order.is_empty(),
        "{} #{ticket} ({prefix}): out of order at {out_of_order:?}",
        desk.name
    );
    assert_eq!(got.len(), n);
}

/// Polls `f` until it holds or `secs` pass; false on timeout.
async fn within<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    true
}

/// Nothing queued or in flight, and both relays have reported since the
/// last start (an empty status board is not "idle").
async fn settled(gw: &Gateway) -> bool {
    let s = gw.status().await;
    let dests = &s["destinations"];
    dests.get("src").is_some() && dests.get("dst").is_some() && gw.idle().await
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Kills and restarts the daemon at random moments: at least `MIN_KILLS`
/// times, and on while the stream still runs (up to `MAX_KILLS`).
fn killer(mut gw: Gateway, seed: u64, streaming_done: Arc<AtomicBool>) -> (Gateway, u32) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kills = 0;
    while kills < MIN_KILLS || (!streaming_done.load(Ordering::SeqCst) && kills < MAX_KILLS) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..=700)));
        gw.kill9();
        kills += 1;
        // Down for a moment: the desks' senders retry meanwhile.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=150)));
        gw.spawn();
    }
    (gw, kills)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_streaming_loses_doubles_and_reorders_nothing() {
    let started = Instant::now();
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: CRASH_SEED={seed}");

    let src = Party::start("src").await;
    let dst = Party::start("dst").await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"src\"\nto = \"dst\"\n",
        src.toml(dir.path(), "svc", ""),
        dst.toml(dir.path(), "vendor", ""),
    );
    let gw = tokio::task::spawn_blocking(move || Gateway::start_with(dir, &config))
        .await
        .unwrap();
    src.connect(&gw);
    dst.connect(&gw);

    // Two tickets in src: the rule hands each to dst, making two links.
    let s1 = src
        .desk
        .create_ticket("Link one", "first", &[], "Sam (svc)");
    let s2 = src
        .desk
        .create_ticket("Link two", "second", &[], "Sam (svc)");
    eventually("both tickets transferred to dst", 30, || async {
        dst.desk.tickets().len() == 2
    })
    .await;
    let dst_ticket_of = |s: &str| -> String {
        dst.desk
            .tickets()
            .into_iter()
            .find(|t| matches!(&t.partner, Some((_, Some(p))) if p == s))
            .unwrap_or_else(|| panic!("no dst ticket for src #{s}"))
            .id
    };
    let (d1, d2) = (dst_ticket_of(&s1), dst_ticket_of(&s2));
    let links = [(s1, d1, "L1", "R1"), (s2, d2, "L2", "R2")];

    let streaming_done = Arc::new(AtomicBool::new(false));
    let done = streaming_done.clone();
    let killer = tokio::task::spawn_blocking(move || killer(gw, seed, done));

    // The stream: comments for the partner down both links, and every
    // fifth step a public reply from dst back up. Written at a steady pace
    // so that the kills land in the middle of it.
    let step = DOWN_PER_LINK / UP_PER_LINK;
    for i in 0..DOWN_PER_LINK {
        for (s, d, down, up) in &links {
            src.desk.comment(
                s,
                &format!("{down} #{i:04}"),
                Audience::Partner,
                "Sam (svc)",
                &[],
            );
            if i % step == 0 {
                dst.desk.comment(
                    d,
                    &format!("{up} #{:04}", i / step),
                    Audience::Public,
                    "Lee (vendor)",
                    &[],
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    // Kills go on while the daemon still has the stream to work through.
    let all_arrived = || async {
        links.iter().all(|(s, d, _, _)| {
            relayed_count(&dst.desk, d) >= DOWN_PER_LINK
                && relayed_count(&src.desk, s) >= UP_PER_LINK
        })
    };
    within(120, || async {
        all_arrived().await || killer.is_finished()
    })
    .await;
    streaming_done.store(true, Ordering::SeqCst);
    let (gw, kills) = killer.await.unwrap();

    // Then everything drains: the desks have had every change accepted and
    // deskbridge has nothing queued, for a few polls in a row. Whatever is
    // not at its destination now is lost.
    let calm = std::cell::Cell::new(0);
    let quiet = within(60, || {
        let gw = &gw;
        let (src, dst) = (&src, &dst);
        let calm = &calm;
        async move {
            let now = src.desk.unsent() == 0 && dst.desk.unsent() == 0 && settled(gw).await;
            calm.set(if now { calm.get() + 1 } else { 0 });
            calm.get() >= 3
        }
    })
    .await;
    assert!(
        quiet,
        "not settled after {kills} kills: src unsent {}, dst unsent {}, status {}\n\
         daemon log (tail):\n{}",
        src.desk.unsent(),
        dst.desk.unsent(),
        gw.status().await,
        tail(&gw.log())
    );

    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
    assert!(src.desk.rejected().is_empty(), "{:?}", src.desk.rejected());
    assert!(dst.desk.rejected().is_empty(), "{:?}", dst.desk.rejected());
    for (s, d, down, up) in &links {
        assert_exactly_once_in_order(&dst.desk, d, down, DOWN_PER_LINK, Audience::Public);
        assert_exactly_once_in_order(&src.desk, s, up, UP_PER_LINK, Audience::Internal);
    }
    assert_eq!(dst.desk.tickets().len(), 2, "a transfer was doubled");
    assert_eq!(src.desk.tickets().len(), 2);

    // Applied at dst: the two transfers and the comments; at src, the replies.
    let dst_applied = 2 + 2 * DOWN_PER_LINK;
    let src_applied = 2 * UP_PER_LINK;
    eprintln!(
        "crash test: {kills} SIGKILLs; dst received {} deliveries, applied {dst_applied}; \
         src received {} deliveries, applied {src_applied}; {:.1} s",
        dst.desk.received(),
        src.desk.received(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= MIN_KILLS);
    assert!(dst.desk.received() >= dst_applied as u64);
    assert!(src.desk.received() >= src_applied as u64);
}
