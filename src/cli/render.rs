//! What the operator commands print: links, their chain, the status of
//! each destination and source, in an operator's words; or JSON.

use anyhow::Result;
use deskbridge::ops::{LinkView, StatusView};

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn print_link(l: &LinkView) {
    let side = |s: &deskbridge::ops::SideView| {
        format!(
            "{} ({}) ticket {} [{}]",
            s.endpoint,
            s.party,
            s.ticket.as_deref().unwrap_or("(being created)"),
            s.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into())
        )
    };
    println!(
        "{}  {}  ->  {}",
        l.id,
        side(&l.upstream),
        side(&l.downstream)
    );
}

/// Where the work stands at each company of the link's chain, and how
/// long each has held it.
pub fn print_chain(l: &LinkView) {
    if l.chain.len() < 2 {
        return;
    }
    println!("chain (the work, from the company it came from):");
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    for s in &l.chain {
        let mut line = format!(
            "  {:indent$}{} ({}) ticket {}",
            "",
            s.endpoint,
            s.party,
            s.ticket.as_deref().unwrap_or("(being created)"),
            indent = s.depth * 2
        );
        let relayed = if s.status_relayed {
            " (relayed from its partner)"
        } else {
            ""
        };
        match (s.status, s.status_at) {
            (Some(st), Some(at)) => line.push_str(&format!(", {st}{relayed} since {}", time(at))),
            (Some(st), None) => line.push_str(&format!(", {st}{relayed}")),
            _ => {}
        }
        if let (Some(got), Some(held)) = (s.got_at, s.held_secs) {
            line.push_str(&format!(
                ", handed the work {}, held it {}{}",
                time(got),
                deskbridge::human::duration(held),
                if s.done_at.is_some() { "" } else { " so far" }
            ));
        }
        if Some(&l.id) == s.link.as_ref() {
            line.push_str("  <- this link");
        }
        println!("{line}");
    }
}

/// The daemon, then each destination, poller and mailbox: one line each.
pub fn print_status(s: &StatusView) {
    println!(
        "daemon {}; {} links, {} dead letters",
        if s.running { "running" } else { "not running" },
        s.links,
        s.dead_letters
    );
    if let Some(b) = &s.broker {
        match &b.waiting {
            None => println!("  broker: connected, {} published", b.published),
            Some(why) => println!(
                "  broker: WAITING for the broker since {}: {why} (events are kept in the outbox)",
                b.waiting_since.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        }
    }
    for (name, d) in &s.destinations {
        if d.unconfigured {
            println!(
                "  {name}: NOT CONFIGURED to receive, {} queued, {} parked{}: configure endpoints.{name} again to deliver them in order, or give them up with `deskbridge discard --queued-for {name}`",
                d.queued,
                d.parked,
                d.oldest_waiting_since
                    .map(|t| format!(", the oldest waiting for {}", ago(t)))
                    .unwrap_or_default()
            );
            continue;
        }
        println!(
            "  {name}: {} queued, {} in flight, {} delivered, {} blocked links{}{}{}",
            d.queued,
            d.in_flight,
            d.delivered,
            d.blocked_links,
            d.oldest_waiting_since
                .map(|t| format!(", the oldest waiting for {}", ago(t)))
                .unwrap_or_default(),
            broker_part(d),
            d.failing
                .as_ref()
                .map(|f| format!(
                    ", failing since {}: {f}",
                    d.failing_since.map(|t| t.to_rfc3339()).unwrap_or_default()
                ))
                .unwrap_or_default()
        );
    }
    for (name, p) in &s.pollers {
        println!(
            "  {name} polling: {} rounds (the last: {} list requests, {} tickets read, {} ms), {} events taken, last read {}; the product's webhooks: {} taken, {} refused{}",
            p.rounds,
            p.last_round_pages,
            p.last_round_reads,
            p.last_round_ms,
            p.taken,
            p.last_ok.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()),
            p.webhooks,
            p.webhooks_refused,
            match (&p.failing, &p.paused) {
                (Some(f), _) => format!("; FAILING: {f}"),
                (None, Some(paused)) => format!("; every request {paused}"),
                (None, None) => String::new(),
            }
        );
    }
    for (name, m) in &s.mailboxes {
        println!(
            "  {name} mailbox: {} mails taken, {} left alone (automatic, bounces, own), {} not applied{}{}",
            m.taken,
            m.left_alone,
            m.not_applied,
            m.last_not_applied
                .as_ref()
                .map(|l| format!(" (latest: {l})"))
                .unwrap_or_default(),
            m.failing
                .as_ref()
                .map(|f| format!("; FAILING: {f}"))
                .unwrap_or_default()
        );
    }
}

/// How long ago `t` was, to the operator's eye.
fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    deskbridge::human::duration((chrono::Utc::now() - t).num_seconds())
}

/// The broker's side of a destination's status line: what waits at the
/// broker and what is parked in the store.
fn broker_part(d: &deskbridge::relay::DestStatus) -> String {
    let mut out = String::new();
    if let Some(n) = d.at_broker {
        out.push_str(&format!(", {n} waiting at the broker"));
    }
    if d.parked > 0 {
        out.push_str(&format!(
            ", {} parked in the store ({} links)",
            d.parked, d.parked_links
        ));
    }
    if d.waiting_links > 0 {
        out.push_str(&format!(
            ", {} links wait for an earlier message the broker has not delivered",
            d.waiting_links
        ));
    }
    if d.foreign > 0 {
        out.push_str(&format!(
            ", {} messages for links this deskbridge does not know moved to the broker's dead-letter queue (another deskbridge on the same bus.prefix?)",
            d.foreign
        ));
    }
    out
}
