//! Ingest's unit tests: a store in a temporary directory, two webhook
//! endpoints and one transfer rule.

use super::{Ingest, IngestError, Outcome};
use crate::blob::{BlobError, BlobStore};
use crate::bus::notify::Notifier;
use crate::config::Config;
use crate::event::{Audience, Comment, Event, EventKind, Ticket};
use crate::link::Link;
use crate::store::Store;
use base64::Engine as _;
use std::sync::Arc;

const CONFIG: &str = r#"
[parties.a]
name = "A Co"
role = "service_company"
[parties.b]
name = "B Co"
role = "vendor"
[endpoints.a]
party = "a"
kind = "webhook"
service_account = "bridge"
[endpoints.a.webhook]
[endpoints.b]
party = "b"
kind = "webhook"
[endpoints.b.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
[[transfers]]
from = "a"
to = "b"
"#;

fn setup() -> (tempfile::TempDir, Ingest, Store) {
    setup_with(CONFIG)
}

fn setup_with(conf: &str) -> (tempfile::TempDir, Ingest, Store) {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("DESKBRIDGE_UNIT_TEST_SECRET", "whsec_dGVzdHNlY3JldA==");
    let config = Arc::new(Config::parse(conf).unwrap());
    let store = Store::open(dir.path()).unwrap();
    let blobs = BlobStore::open(dir.path().join("files"), 1024).unwrap();
    let ingest = Ingest::new(config, store.clone(), blobs, Notifier::default());
    (dir, ingest, store)
}

fn created(ticket: &str) -> Event {
    Event::new(
        ticket,
        EventKind::TicketCreated {
            ticket_data: Ticket {
                subject: "s".into(),
                ..Ticket::default()
            },
        },
    )
}

fn comment(ticket: &str, body: &str, audience: Audience) -> Event {
    Event::new(
        ticket,
        EventKind::Comment {
            comment: Comment {
                body: body.into(),
                audience,
                attachments: vec![],
            },
        },
    )
}

#[tokio::test]
async fn cursor_moves_with_the_queue_writes() {
    let (_d, ingest, store) = setup();
    let out = ingest
        .accept_polled("a", None, vec![created("1")], Some(b"page-2"))
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Accepted {
            queued: 1,
            links_created: 1
        }
    );
    assert_eq!(store.cursor("a").unwrap().as_deref(), Some(&b"page-2"[..]));
    assert_eq!(store.pending("b").unwrap().len(), 1);
}

#[tokio::test]
async fn a_transfer_keeps_the_origins_time_and_id_of_the_change() {
    let (_d, ingest, store) = setup();
    let mut ev = created("1");
    ev.occurred_at = "2026-11-23T10:00:00Z".parse().unwrap();
    ev.source_id = Some("ticket-1".into());
    let mut files = ev.clone();
    files.id = uuid::Uuid::now_v7();
    files.ticket = "2".into();
    if let Some(f) = files.attachments_mut() {
        f.push(crate::event::Attachment {
            name: "..".into(),
            content_type: "text/plain\r\nX-Evil: 1".into(),
            sha256: None,
            size: None,
            content_base64: Some("aGk=".into()),
        });
    }
    ingest
        .accept("a", None, vec![ev.clone(), files])
        .await
        .unwrap();
    let mut c = comment("1", "for the vendor", Audience::Partner);
    c.occurred_at = "2026-11-23T11:00:00Z".parse().unwrap();
    c.source_id = Some("c9".into());
    ingest.accept("a", None, vec![c.clone()]).await.unwrap();
    let queued = store.pending("b").unwrap();
    assert_eq!(queued.len(), 3);
    for (_, env) in &queued {
        let sent = &env.event;
        let origin = if sent.ticket == "2" || sent.id == ev.id {
            &ev
        } else {
            &c
        };
        assert_eq!(sent.occurred_at, origin.occurred_at, "{sent:?}");
        assert_eq!(sent.origin_source_id, origin.source_id, "{sent:?}");
        // Not under the name the receiver's echo check reads.
        assert_eq!(sent.source_id, None, "{sent:?}");
    }
    // One rule for file names and content types, whatever the source.
    let (_, with_file) = queued.iter().find(|(_, e)| e.event.ticket == "2").unwrap();
    let f = &with_file.event.attachments()[0];
    assert_eq!(f.name, "attachment");
    assert_eq!(f.content_type, "text/plain");
}

#[tokio::test]
async fn a_rule_on_priority_or_due_fires_once_on_the_change_that_meets_it() {
    let conf = CONFIG.replace(
        "to = \"b\"\n",
        "to = \"b\"\nwhen = { fields = { priority = \"Urgent\", due = \"2026-12-20\" } }\n",
    );
    let (_d, ingest, store) = setup_with(&conf);
    let change = |field: &str, value: &str| {
        Event::new(
            "1",
            EventKind::FieldChanged {
                field: field.into(),
                value: value.into(),
            },
        )
    };
    ingest.accept("a", None, vec![created("1")]).await.unwrap();
    ingest
        .accept("a", None, vec![change("priority", "urgent")])
        .await
        .unwrap();
    assert!(store.pending("b").unwrap().is_empty(), "due is not met yet");
    // Any time that day (UTC) is that date.
    ingest
        .accept("a", None, vec![change("due", "2026-12-20T15:00:00Z")])
        .await
        .unwrap();
    let queued = store.pending("b").unwrap();
    assert_eq!(queued.len(), 1);
    let EventKind::TicketCreated { ticket_data } = &queued[0].1.event.kind else {
        panic!("{:?}", queued[0].1.event.kind)
    };
    assert_eq!(ticket_data.priority.as_deref(), Some("urgent"));
    // Later changes of the same fields are relayed, never a second
    // hand-over.
    ingest
        .accept(
            "a",
            None,
            vec![change("priority", "high"), change("priority", "urgent")],
        )
        .await
        .unwrap();
    let queued = store.pending("b").unwrap();
    let transfers = queued
        .iter()
        .filter(|(_, e)| matches!(e.event.kind, EventKind::TicketCreated { .. }))
        .count();
    assert_eq!(transfers, 1, "{queued:?}");
}

#[tokio::test]
async fn repeats_and_echoes_change_nothing() {
    let (_d, ingest, store) = setup();
    ingest
        .accept("a", Some("m1"), vec![created("1")])
        .await
        .unwrap();
    assert_eq!(
        ingest
            .accept("a", Some("m1"), vec![created("1")])
            .await
            .unwrap(),
        Outcome::Duplicate
    );
    let c = comment("1", "for the vendor", Audience::Partner);
    ingest.accept("a", None, vec![c.clone()]).await.unwrap();
    // the same event id again, under another message id
    ingest.accept("a", Some("m2"), vec![c]).await.unwrap();
    // written by deskbridge's service account, or carrying its marker
    let mut echo = comment("1", "relayed", Audience::Partner);
    echo.author = Some(crate::event::Author {
        name: "bridge".into(),
        email: None,
    });
    let marked = comment(
        "1",
        &format!("relayed {}", crate::event::marker(uuid::Uuid::now_v7())),
        Audience::Partner,
    );
    ingest.accept("a", None, vec![echo, marked]).await.unwrap();
    // the transfer and the one partner comment, nothing else
    assert_eq!(store.pending("b").unwrap().len(), 2);
    assert_eq!(store.links().unwrap().len(), 1);
}

/// client (a) → service company (b) → vendor (c), each receiving.
const CHAIN: &str = r#"
[parties.a]
name = "A Co"
role = "client"
[parties.b]
name = "B Co"
role = "service_company"
[parties.c]
name = "C Co"
role = "vendor"
[endpoints.a]
party = "a"
kind = "webhook"
[endpoints.a.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
[endpoints.b]
party = "b"
kind = "webhook"
[endpoints.b.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
[endpoints.b.policy]
share_client_conversation = true
partner_comments = "public"
[endpoints.c]
party = "c"
kind = "webhook"
[endpoints.c.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
"#;

#[tokio::test]
async fn what_lands_on_a_middle_ticket_goes_on_a_comment_only_up() {
    let (_dir, ingest, store) = setup_with(CHAIN);
    let mut up = Link::new("a", "1", "b");
    up.downstream.ticket = Some("2".into());
    let mut down = Link::new("b", "2", "c");
    down.downstream.ticket = Some("3".into());
    let (u, d) = (up.clone(), down.clone());
    store
        .ingest_tx(move |tx| {
            tx.put_link(&u)?;
            tx.put_link(&d)
        })
        .unwrap();
    let kinds = |dest: &str| -> Vec<String> {
        store
            .pending(dest)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.event.kind.name().to_string())
            .collect()
    };
    // The vendor's comment, landed public at b, climbs to the client.
    let from_below = comment("3", "parts ordered", Audience::Public);
    assert_eq!(
        ingest.onward("b", "2", down.id, &from_below).await.unwrap(),
        1
    );
    assert_eq!(kinds("a"), ["comment"]);
    // Again (a redelivery): taken once.
    assert_eq!(
        ingest.onward("b", "2", down.id, &from_below).await.unwrap(),
        0
    );
    // The client's comment, landed public at b, does not go down to
    // b's other partners (b shares its client conversation only by
    // what b itself writes).
    let from_above = comment("1", "my phone is 555", Audience::Public);
    assert_eq!(
        ingest.onward("b", "2", up.id, &from_above).await.unwrap(),
        0
    );
    assert!(kinds("c").is_empty(), "{:?}", kinds("c"));
    // A status goes every way but back: the client's cancellation,
    // set on b, reaches the vendor (and b shows it its partner's
    // status is now b's), not the client again.
    let cancelled = Event::new(
        "1",
        EventKind::StatusChanged {
            status: crate::event::Status::Cancelled,
        },
    );
    ingest.onward("b", "2", up.id, &cancelled).await.unwrap();
    assert_eq!(kinds("c"), ["status_changed", "field_changed"]);
    assert_eq!(kinds("a"), ["comment"]);
}

#[tokio::test]
async fn a_status_the_link_already_has_is_not_relayed_again() {
    let (_d, ingest, store) = setup();
    ingest.accept("a", None, vec![created("1")]).await.unwrap();
    let status = |s: crate::event::Status| Event::new("1", EventKind::StatusChanged { status: s });
    use crate::event::Status::{InProgress, Resolved};
    // a product reporting the status it holds, round after round
    ingest
        .accept("a", None, vec![status(Resolved)])
        .await
        .unwrap();
    ingest
        .accept("a", None, vec![status(Resolved)])
        .await
        .unwrap();
    ingest
        .accept("a", None, vec![status(InProgress), status(Resolved)])
        .await
        .unwrap();
    let kinds: Vec<String> = store
        .pending("b")
        .unwrap()
        .into_iter()
        // (Each status also tells b the partner's status: show_partner.)
        .filter(|(_, e)| !matches!(e.event.kind, EventKind::FieldChanged { .. }))
        .map(|(_, e)| match e.event.kind {
            EventKind::StatusChanged { status } => status.to_string(),
            other => other.name().to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["ticket_created", "resolved", "in_progress", "resolved"]
    );
}

#[tokio::test]
async fn oversized_or_broken_files_are_refused_before_anything_is_stored() {
    let (_d, ingest, store) = setup();
    let mut ev = comment("1", "file", Audience::Partner);
    ev.attachments_mut()
        .unwrap()
        .push(crate::event::Attachment {
            name: "big.bin".into(),
            content_type: "application/octet-stream".into(),
            sha256: None,
            size: None,
            content_base64: Some(base64::engine::general_purpose::STANDARD.encode([0u8; 2048])),
        });
    assert!(matches!(
        ingest.accept("a", Some("m"), vec![ev]).await,
        Err(IngestError::Blob(BlobError::TooLarge { .. }))
    ));
    let mut ev = comment("1", "file", Audience::Partner);
    ev.attachments_mut()
        .unwrap()
        .push(crate::event::Attachment {
            name: "x".into(),
            content_type: "text/plain".into(),
            sha256: None,
            size: None,
            content_base64: Some("%%%".into()),
        });
    assert!(matches!(
        ingest.accept("a", Some("m"), vec![ev]).await,
        Err(IngestError::BadBase64 { .. })
    ));
    // the refused message id was not marked as seen
    assert_eq!(
        ingest
            .accept("a", Some("m"), vec![created("1")])
            .await
            .unwrap(),
        Outcome::Accepted {
            queued: 1,
            links_created: 1
        }
    );
    assert_eq!(store.pending("b").unwrap().len(), 1);
}
