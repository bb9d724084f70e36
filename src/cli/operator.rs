//! The operator's commands: links, dead letters, replay, discard,
//! transfer, status. Each acts through the running daemon's admin API, or
//! on the data dir when no daemon runs.

use super::args::{ConfigArg, LinksCmd};
use super::render::{print_chain, print_json, print_link, print_status};
use super::target::{target, Target};
use anyhow::{Context, Result};
use deskbridge::ops::{DeadView, LinkView, StatusView, TransferRequest};

pub async fn links(c: &ConfigArg, show: Option<LinksCmd>, json: bool) -> Result<()> {
    let t = target(c.load()?).await?;
    match show {
        Some(LinksCmd::Show { id }) => {
            let l: LinkView = match &t {
                Target::Local(o) => o.link(&id)?,
                _ => t.get(&format!("/links/{id}")).await?,
            };
            if json {
                print_json(&l)?;
            } else {
                print_link(&l);
                for (dest, n) in &l.queued {
                    println!("  queued for {dest}: {n}");
                }
                for d in &l.dead {
                    println!("  dead letter {} ({}): {}", d.id, d.kind, d.error);
                }
                print_chain(&l);
            }
        }
        None => {
            let ls: Vec<LinkView> = match &t {
                Target::Local(o) => o.links()?,
                _ => t.get("/links").await?,
            };
            if json {
                print_json(&ls)?;
            } else {
                ls.iter().for_each(print_link);
            }
        }
    }
    Ok(())
}

pub async fn dead(c: &ConfigArg, json: bool) -> Result<()> {
    let t = target(c.load()?).await?;
    let ds: Vec<DeadView> = match &t {
        Target::Local(o) => o.dead()?,
        _ => t.get("/dead").await?,
    };
    if json {
        print_json(&ds)?;
    } else if ds.is_empty() {
        println!("no dead letters");
    } else {
        for d in ds {
            println!(
                "{}  {} on link {}  after {} attempt(s) at {}\n    {}",
                d.id, d.kind, d.link, d.attempts, d.at, d.error
            );
        }
    }
    Ok(())
}

pub async fn replay(c: &ConfigArg, id: String) -> Result<()> {
    let t = target(c.load()?).await?;
    let msg: String = match &t {
        Target::Local(o) => o.replay(&id).await?,
        _ => t.post(&format!("/dead/{id}/replay"), &()).await?,
    };
    println!("{msg}");
    Ok(())
}

pub async fn discard(c: &ConfigArg, id: Option<String>, queued_for: Option<String>) -> Result<()> {
    let t = target(c.load()?).await?;
    let msg: String = match (&t, id, queued_for) {
        (Target::Local(o), Some(id), _) => o.discard(&id).await?,
        (Target::Local(o), None, Some(ep)) => o.discard_queued(&ep).await?,
        (_, Some(id), _) => t.post(&format!("/dead/{id}/discard"), &()).await?,
        (_, None, Some(ep)) => t.post(&format!("/queues/{ep}/discard"), &()).await?,
        (_, None, None) => unreachable!("clap requires one of them"),
    };
    println!("{msg}");
    Ok(())
}

pub async fn transfer(c: &ConfigArg, from: String, to: String) -> Result<()> {
    let (ep, ticket) = from
        .split_once(':')
        .context("--from takes ENDPOINT:TICKET, for example svc:42")?;
    let req = TransferRequest {
        from: ep.into(),
        ticket: ticket.into(),
        to,
    };
    let t = target(c.load()?).await?;
    let l: LinkView = match &t {
        Target::Local(o) => o.transfer(&req).await?,
        _ => t.post("/transfer", &req).await?,
    };
    print_link(&l);
    Ok(())
}

pub async fn status(c: &ConfigArg, json: bool) -> Result<()> {
    let t = target(c.load()?).await?;
    let s: StatusView = match &t {
        Target::Local(o) => o.status()?,
        _ => t.get("/status").await?,
    };
    if json {
        print_json(&s)?;
    } else {
        print_status(&s);
    }
    Ok(())
}
