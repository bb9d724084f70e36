//! Bad input on the inbound webhook, against the real binary: each refusal
//! gives the right HTTP answer and changes nothing (no link, nothing
//! queued, nothing reaches the destination desk). Plus the happy path, a
//! repeated webhook-id, secret rotation and a partner's own payload shape.

use crate::common::{eventually, now, post_signed, Gateway, Party, PARTIES};
use deskbridge::connector::webhook::sign::{self, Secret};
use deskbridge::event::{Audience, Event, EventKind, Ticket};
use serde_json::Value;
use std::path::Path;

/// Inbound body limit of endpoint `a` in these tests.
const MAX_BODY: usize = 4096;

/// Endpoint `a` (a retail chain's dispatch system: it only sends) hands
/// every new ticket to endpoint `b`, a sample desk.
struct Bench {
    gw: Gateway,
    b: Party,
    /// Both secrets are configured for `a` (rotation): old, then new.
    old_secret: String,
    secret: String,
}

impl Bench {
    fn hook(&self) -> String {
        self.gw.hook_url("a")
    }
}

/// `[endpoints.a]` written by hand: Party::toml cannot set two inbound
/// secrets, a body limit or a mapping.
fn endpoint_a(dir: &Path, secrets: &[&str], extra_webhook: &str, policy: &str) -> String {
    let files: Vec<String> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let f = dir.join(format!("a.in.{i}.secret"));
            std::fs::write(&f, s).unwrap();
            format!("{{ file = \"{}\" }}", f.display())
        })
        .collect();
    format!(
        r#"
[endpoints.a]
party = "client"
kind = "webhook"
service_account = "deskbridge"
[endpoints.a.webhook]
inbound_secrets = [{secrets}]
max_body_bytes = {MAX_BODY}
{extra_webhook}
[endpoints.a.policy]
{policy}
"#,
        secrets = files.join(", "),
    )
}

async fn bench_with(mapping: &str, policy_a: &str) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let (_, old_secret) = Secret::generate();
    let (_, secret) = Secret::generate();
    let b = Party::start("b").await;
    let rest = format!(
        "{PARTIES}{a}{b}\n[[transfers]]\nfrom = \"a\"\nto = \"b\"\n",
        a = endpoint_a(dir.path(), &[&old_secret, &secret], mapping, policy_a),
        b = b.toml(dir.path(), "svc", ""),
    );
    let gw = Gateway::start_with(dir, &rest);
    Bench {
        gw,
        b,
        old_secret,
        secret,
    }
}

async fn bench() -> Bench {
    bench_with("", "").await
}

fn created(ticket: &str, subject: &str, description: &str) -> Event {
    Event::new(
        ticket,
        EventKind::TicketCreated {
            ticket_data: Ticket {
                subject: subject.into(),
                description: description.into(),
                ..Ticket::default()
            },
        },
    )
}

/// An attachments list with one small file.
fn file(name: &str, content_type: &str) -> Value {
    serde_json::json!([{ "name": name, "content_type": content_type, "content_base64": "aGk=" }])
}

fn body(ev: &Event) -> Vec<u8> {
    serde_json::to_vec(ev).unwrap()
}

/// Status and the JSON answer of a request.
async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// The `error` text of a refusal.
fn reason(v: &Value) -> String {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text in {v}"))
        .to_string()
}

/// POSTs with exactly the given webhook headers.
async fn post_raw(url: &str, headers: &[(&str, String)], body: &[u8]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.body(body.to_vec()).send().await.unwrap()
}

/// Nothing changed: `links` links, nothing queued anywhere, no dead
/// letter, and the destination desk holds `tickets` tickets and got no
/// other delivery.
async fn assert_unchanged(bench: &Bench, links: usize, tickets: usize) {
    let s = bench.gw.status().await;
    assert_eq!(s["links"], links, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    for (name, d) in s["destinations"].as_object().unwrap() {
        assert_eq!(d["queued"], 0, "{name}: {s}");
        assert_eq!(d["in_flight"], 0, "{name}: {s}");
    }
    let ls = bench.gw.get("/links").await;
    assert_eq!(ls.as_array().unwrap().len(), links, "{ls}");
    assert_eq!(bench.b.desk.tickets().len(), tickets);
    assert_eq!(bench.b.desk.received(), tickets as u64);
}

/// Waits until everything queued is delivered and `b` holds `n` tickets.
async fn settle(bench: &Bench, n: usize) {
    eventually(
        &format!("{n} ticket(s) at b, nothing queued"),
        15,
        || async { bench.b.desk.tickets().len() >= n && bench.gw.idle().await },
    )
    .await;
    assert_eq!(bench.b.desk.tickets().len(), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_signed_ticket_created_is_transferred() {
    let bench = bench().await;
    let ev = created("R-1", "Till 3 does not print", "paper jam sensor");
    let r = post_signed(&bench.hook(), &bench.secret, "msg_ok", now(), &body(&ev)).await;
    let (status, v) = answer(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "accepted", "{v}");
    assert_eq!(v["event"], ev.id.to_string(), "{v}");
    assert_eq!(v["queued"], 1, "{v}");

    settle(&bench, 1).await;
    let t = &bench.b.desk.tickets()[0];
    assert_eq!(t.subject, "Till 3 does not print");
    assert_eq!(t.description, "paper jam sensor");
    assert_eq!(
        t.partner,
        Some(("Client Co".to_string(), Some("R-1".to_string())))
    );
    let links = bench.gw.get("/links").await;
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["upstream"]["endpoint"], "a");
    assert_eq!(links[0]["upstream"]["ticket"], "R-1");
    assert_eq!(links[0]["downstream"]["endpoint"], "b");
    assert_eq!(links[0]["downstream"]["ticket"], t.id.as_str());
    assert_eq!(bench.b.desk.received(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_timestamps_are_401_and_change_nothing() {
    let bench = bench().await;
    let hook = bench.hook();
    // Every refused request carries this same id and body: had any of them
    // been stored, the valid one at the end would be answered "duplicate".
    let msg = "msg_once";
    let b = body(&created("R-1", "Scale shows 0", ""));
    let ts = now();
    let good = Secret::parse(&bench.secret).unwrap();

    // unsigned
    let (status, v) = answer(post_raw(&hook, &[], &b).await).await;
    assert_eq!(status, 401, "{v}");
    assert!(reason(&v).contains("webhook-id"), "{v}");
    assert_unchanged(&bench, 0, 0).await;

    // id and timestamp but no signature
    let headers = [
        (sign::HEADER_ID, msg.to_string()),
        (sign::HEADER_TIMESTAMP, ts.to_string()),
    ];
    let (status, v) = answer(post_raw(&hook, &headers, &b).await).await;
    assert_eq!(status, 401, "{v}");
    assert!(reason(&v).contains("webhook-signature"), "{v}");
    assert_unchanged(&bench, 0, 0).await;

    // a wrong signature: the right secret over another body, and garbage
    let other_body = sign::sign(&good, msg, ts, b"{}");
    for sig in [
        other_body,
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
    ] {
        let headers = [
            (sign::HEADER_ID, msg.to_string()),
            (sign::HEADER_TIMESTAMP, ts.to_string()),
            (sign::HEADER_SIGNATURE, sig),
        ];
        let (status, v) = answer(post_raw(&hook, &headers, &b).await).await;
        assert_eq!(status, 401, "{v}");
        assert!(reason(&v).contains("signature"), "{v}");
        assert_unchanged(&bench, 0, 0).await;
    }

    // the body tampered with after signing
    let mut tampered = b.clone();
    let at = tampered.len() - 2;
    tampered[at] = b' ';
    let headers = [
        (sign::HEADER_ID, msg.to_string()),
        (sign::HEADER_TIMESTAMP, ts.to_string()),
        (sign::HEADER_SIGNATURE, sign::sign(&good, msg, ts, &b)),
    ];
    let (status, v) = answer(post_raw(&hook, &headers, &tampered).await).await;
    assert_eq!(status, 401, "{v}");
    assert_unchanged(&bench, 0, 0).await;

    // signed with a secret that is not configured for `a` (b's own secret
    // among them: secrets are per endpoint)
    let (_, stranger) = Secret::generate();
    for secret in [stranger.as_str(), bench.b.in_secret.as_str()] {
        let (status, v) = answer(post_signed(&hook, secret, msg, ts, &b).await).await;
        assert_eq!(status, 401, "{v}");
        assert!(reason(&v).contains("no v1 signature"), "{v}");
        assert_unchanged(&bench, 0, 0).await;
    }

    // stale (more than 5 minutes old) and from the future, validly signed
    for (ts, word) in [
        (now() - 301, "old"),
        (now() - 3600, "old"),
        (now() + 301, "future"),
        (now() + 3600, "future"),
    ] {
        let (status, v) = answer(post_signed(&hook, &bench.secret, msg, ts, &b).await).await;
        assert_eq!(status, 401, "{v}");
        assert!(reason(&v).contains(word), "{v}");
        assert_unchanged(&bench, 0, 0).await;
    }

    // a timestamp that is not a number
    let headers = [
        (sign::HEADER_ID, msg.to_string()),
        (sign::HEADER_TIMESTAMP, "yesterday".to_string()),
        (sign::HEADER_SIGNATURE, sign::sign(&good, msg, ts, &b)),
    ];
    let (status, v) = answer(post_raw(&hook, &headers, &b).await).await;
    assert_eq!(status, 401, "{v}");
    assert_unchanged(&bench, 0, 0).await;

    // Now the same id and body, properly signed: accepted, and the only
    // thing that ever reaches b.
    let (status, v) = answer(post_signed(&hook, &bench.secret, msg, now(), &b).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "accepted", "{v}");
    settle(&bench, 1).await;
    assert_eq!(bench.b.desk.tickets()[0].subject, "Scale shows 0");
    assert_eq!(bench.b.desk.received(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_max_body_bytes_is_413_and_changes_nothing() {
    let bench = bench().await;
    let big = body(&created("R-1", "Lift stuck", &"x".repeat(2 * MAX_BODY)));
    assert!(big.len() > MAX_BODY);
    let (status, v) =
        answer(post_signed(&bench.hook(), &bench.secret, "msg_big", now(), &big).await).await;
    assert_eq!(status, 413, "{v}");
    assert!(reason(&v).contains(&MAX_BODY.to_string()), "{v}");
    assert_unchanged(&bench, 0, 0).await;

    // One byte over the limit is still too large; the limit itself is not.
    let base = body(&created("R-1", "Lift stuck", ""));
    let pad = |n: usize| body(&created("R-1", "Lift stuck", &"y".repeat(n)));
    let over = pad(MAX_BODY + 1 - base.len());
    assert_eq!(over.len(), MAX_BODY + 1);
    let (status, v) =
        answer(post_signed(&bench.hook(), &bench.secret, "msg_over", now(), &over).await).await;
    assert_eq!(status, 413, "{v}");
    assert_unchanged(&bench, 0, 0).await;

    let exact = pad(MAX_BODY - base.len());
    assert_eq!(exact.len(), MAX_BODY);
    let (status, v) =
        answer(post_signed(&bench.hook(), &bench.secret, "msg_big", now(), &exact).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "accepted", "{v}");
    settle(&bench, 1).await;
    assert_eq!(bench.b.desk.tickets()[0].subject, "Lift stuck");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_or_incomplete_events_are_400_with_a_reason() {
    let bench = bench().await;
    let hook = bench.hook();
    let good = serde_json::to_value(created("R-1", "POS terminal offline", "")).unwrap();
    let without = |path: &[&str]| {
        let mut v = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut v;
        for p in parents {
            at = &mut at[*p];
        }
        at.as_object_mut().unwrap().remove(*last);
        serde_json::to_vec(&v).unwrap()
    };
    let with = |path: &[&str], value: Value| {
        let mut v = good.clone();
        let mut at = &mut v;
        for p in path {
            at = &mut at[*p];
        }
        *at = value;
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated JSON", b"{\"id\": ".to_vec(), "not JSON"),
        ("not JSON at all", b"ticket=R-1".to_vec(), "not JSON"),
        ("empty body", vec![], "not JSON"),
        ("a JSON array", b"[1,2]".to_vec(), "not a deskbridge event"),
        ("no ticket", without(&["ticket"]), "`ticket`"),
        ("no id", without(&["id"]), "`id`"),
        ("no type", without(&["type"]), "`type`"),
        (
            "no subject",
            without(&["ticket_data", "subject"]),
            "`subject`",
        ),
        (
            "blank subject",
            with(&["ticket_data", "subject"], "  ".into()),
            "ticket_data.subject",
        ),
        (
            "empty ticket",
            with(&["ticket"], "".into()),
            "ticket: must not be empty",
        ),
        (
            "unknown type",
            with(&["type"], "ticket_deleted".into()),
            "ticket_deleted",
        ),
        ("id not a uuid", with(&["id"], "42".into()), "id: UUID"),
        // Unknown fields: refused at the top level as inside.
        (
            "a misspelt top-level field",
            with(&["sourceid"], "c9".into()),
            "unknown field `sourceid`",
        ),
        (
            "another kind's field",
            with(&["status"], "resolved".into()),
            "unknown field `status` for type `ticket_created`",
        ),
        (
            "an unknown field inside",
            with(&["ticket_data", "subjekt"], "x".into()),
            "unknown field `subjekt`",
        ),
        // One rule for file names.
        (
            "a file named ..",
            with(&["ticket_data", "attachments"], file("..", "text/plain")),
            "must not be . or ..",
        ),
        (
            "a file named .",
            with(&["ticket_data", "attachments"], file(".", "text/plain")),
            "must not be . or ..",
        ),
        (
            "a line break in a file name",
            with(
                &["ticket_data", "attachments"],
                file("a.pdf\r\nX-Evil: 1", "application/pdf"),
            ),
            "control characters",
        ),
        (
            "a line break in a content type",
            with(
                &["ticket_data", "attachments"],
                file("a.pdf", "application/pdf\nX-Evil: 1"),
            ),
            "control characters",
        ),
    ];
    // All refused under one webhook-id: a refusal does not use it up.
    let msg = "msg_same";
    for (what, b, word) in &cases {
        let (status, v) = answer(post_signed(&hook, &bench.secret, msg, now(), b).await).await;
        assert_eq!(status, 400, "{what}: {v}");
        let r = reason(&v);
        assert!(
            r.contains(word),
            "{what}: reason {r:?} should name {word:?}"
        );
        assert_unchanged(&bench, 0, 0).await;
    }
    // The well-formed event goes through under that id.
    let good = serde_json::to_vec(&good).unwrap();
    let (status, v) = answer(post_signed(&hook, &bench.secret, msg, now(), &good).await).await;
    assert_eq!(v["status"], "accepted", "{v}");
    assert_eq!(status, 200, "{v}");
    settle(&bench, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_webhook_id_is_answered_duplicate_and_applied_once() {
    let bench = bench().await;
    let hook = bench.hook();
    let b = body(&created("R-7", "Fire alarm panel beeps", ""));
    let ts = now();
    let (status, v) = answer(post_signed(&hook, &bench.secret, "msg_7", ts, &b).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    // The sender's retry: byte for byte the same request.
    let (status, v) = answer(post_signed(&hook, &bench.secret, "msg_7", ts, &b).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("duplicate")),
        "{v}"
    );
    // A retry re-signed later, even one that re-minted the event: the
    // webhook-id is what identifies the message.
    let again = body(&created("R-7", "Fire alarm panel beeps", ""));
    let (status, v) =
        answer(post_signed(&hook, &bench.old_secret, "msg_7", now(), &again).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("duplicate")),
        "{v}"
    );
    // The same event under a new webhook-id (a sender that re-mints ids):
    // taken, but the event id is known, so nothing new is queued.
    let (status, v) = answer(post_signed(&hook, &bench.secret, "msg_7b", now(), &b).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    assert_eq!(v["queued"], 0, "{v}");

    settle(&bench, 1).await;
    let s = bench.gw.status().await;
    assert_eq!(s["links"], 1, "{s}");
    assert_eq!(s["destinations"]["b"]["delivered"], 1, "{s}");
    assert_eq!(bench.b.desk.received(), 1);
    assert_eq!(bench.b.desk.tickets()[0].subject, "Fire alarm panel beeps");
}

#[tokio::test(flavor = "multi_thread")]
async fn during_rotation_both_inbound_secrets_are_accepted() {
    let bench = bench().await;
    let hook = bench.hook();
    let old = body(&created("R-1", "signed with the old secret", ""));
    let (status, v) =
        answer(post_signed(&hook, &bench.old_secret, "msg_old", now(), &old).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    let new = body(&created("R-2", "signed with the new secret", ""));
    let (status, v) = answer(post_signed(&hook, &bench.secret, "msg_new", now(), &new).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    // A sender mid-rotation signs with both, a stranger's signature first.
    let both = body(&created(
        "R-3",
        "signed with a stranger's and the new secret",
        "",
    ));
    let ts = now();
    let (stranger, _) = Secret::generate();
    let sig = format!(
        "{} {}",
        sign::sign(&stranger, "msg_both", ts, &both),
        sign::sign(
            &Secret::parse(&bench.secret).unwrap(),
            "msg_both",
            ts,
            &both
        )
    );
    let headers = [
        (sign::HEADER_ID, "msg_both".to_string()),
        (sign::HEADER_TIMESTAMP, ts.to_string()),
        (sign::HEADER_SIGNATURE, sig),
    ];
    let (status, v) = answer(post_raw(&hook, &headers, &both).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );

    settle(&bench, 3).await;
    let mut subjects: Vec<String> = bench
        .b
        .desk
        .tickets()
        .into_iter()
        .map(|t| t.subject)
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "signed with a stranger's and the new secret",
            "signed with the new secret",
            "signed with the old secret"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_endpoint_is_404_and_changes_nothing() {
    let bench = bench().await;
    let b = body(&created("R-1", "Where does this go?", ""));
    for endpoint in ["nope", "A", "a.b"] {
        let url = bench.gw.hook_url(endpoint);
        let (status, v) = answer(post_signed(&url, &bench.secret, "msg_x", now(), &b).await).await;
        assert_eq!(status, 404, "{endpoint}: {v}");
        assert!(reason(&v).contains(endpoint), "{v}");
        assert_unchanged(&bench, 0, 0).await;
    }
    // The right endpoint with the same id still takes it.
    let (status, v) =
        answer(post_signed(&bench.hook(), &bench.secret, "msg_x", now(), &b).await).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    settle(&bench, 1).await;
}

const MAPPING: &str = r#"
[endpoints.a.webhook.mapping]
ticket = "/order/id"
event_type = "/event"
types = { "order.created" = "ticket_created", "order.note" = "comment", "order.state" = "status_changed" }
source_id = "/change_id"
subject = "/order/title"
description = "/order/details"
comment = "/note/text"
status = "/order/state"
statuses = { "DONE" = "resolved" }
fields = { site = "/store/address", equipment = "/order/asset" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn partner_payload_shape_is_mapped_and_unmapped_required_fields_are_400() {
    let bench = bench_with(
        MAPPING,
        r#"allowed_fields = ["description", "site", "equipment"]"#,
    )
    .await;
    let hook = bench.hook();
    let send = |msg: &'static str, v: Value| {
        let hook = hook.clone();
        let secret = bench.secret.clone();
        async move {
            answer(post_signed(&hook, &secret, msg, now(), &serde_json::to_vec(&v).unwrap()).await)
                .await
        }
    };

    let (status, v) = send(
        "msg_created",
        serde_json::json!({
            "event": "order.created",
            "change_id": "ch-1",
            "order": {"id": 4711, "title": "Scale broken", "details": "aisle 3", "asset": "SC-200"},
            "store": {"address": "Main St 1"},
        }),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    settle(&bench, 1).await;
    let t = bench.b.desk.tickets().remove(0);
    assert_eq!(t.subject, "Scale broken");
    assert_eq!(t.description, "aisle 3");
    assert_eq!(t.fields.get("site").map(String::as_str), Some("Main St 1"));
    assert_eq!(
        t.fields.get("equipment").map(String::as_str),
        Some("SC-200")
    );
    assert_eq!(t.partner, Some(("Client Co".into(), Some("4711".into()))));
    let links = bench.gw.get("/links").await;
    assert_eq!(links[0]["upstream"]["ticket"], "4711", "{links}");

    // Required fields missing from the payload: named, with their pointer.
    let refusals = [
        (
            "no ticket id",
            serde_json::json!({"event": "order.created", "order": {"title": "x"}}),
            vec!["ticket", "/order/id"],
        ),
        (
            "creation without a subject",
            serde_json::json!({"event": "order.created", "order": {"id": 4712, "details": "d"}}),
            vec!["subject", "/order/title"],
        ),
        (
            "note without text",
            serde_json::json!({"event": "order.note", "order": {"id": 4711}}),
            vec!["comment", "/note/text"],
        ),
        (
            "no event type",
            serde_json::json!({"order": {"id": 4713, "title": "x"}}),
            vec!["event_type", "/event"],
        ),
        (
            "unknown event type",
            serde_json::json!({"event": "order.deleted", "order": {"id": 4711}}),
            vec!["order.deleted"],
        ),
        (
            "unknown status",
            serde_json::json!({"event": "order.state", "order": {"id": 4711, "state": "MAYBE"}}),
            vec!["MAYBE"],
        ),
        (
            "subject is an object",
            serde_json::json!({"event": "order.created", "order": {"id": 4714, "title": {"en": "x"}}}),
            vec!["subject", "/order/title"],
        ),
    ];
    for (i, (what, payload, words)) in refusals.into_iter().enumerate() {
        let msg: &'static str = Box::leak(format!("msg_refused_{i}").into_boxed_str());
        let (status, v) = send(msg, payload).await;
        assert_eq!(status, 400, "{what}: {v}");
        let r = reason(&v);
        for w in words {
            assert!(r.contains(w), "{what}: reason {r:?} should name {w:?}");
        }
        assert_unchanged(&bench, 1, 1).await;
    }

    // A note in the partner's shape lands on the linked ticket.
    let (status, v) = send(
        "msg_note",
        serde_json::json!({"event": "order.note", "change_id": "ch-2", "order": {"id": 4711}, "note": {"text": "Technician on site at 14:00"}}),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    eventually("the note at b", 15, || async {
        bench.b.desk.ticket(&t.id).unwrap().comments.len() == 1 && bench.gw.idle().await
    })
    .await;
    let c = &bench.b.desk.ticket(&t.id).unwrap().comments[0];
    assert_eq!(c.body, "Technician on site at 14:00");
    assert_eq!(c.audience, Audience::Public);
    assert_eq!(bench.b.desk.tickets().len(), 1);
}

// ---- slow and idle clients (issue 18, item 9) ----

/// Bench whose daemon has `[daemon.listener]` = `listener`, under an
/// open-file limit of `file_limit` if given.
async fn bench_listener(listener: &str, file_limit: Option<u64>) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let (_, old_secret) = Secret::generate();
    let (_, secret) = Secret::generate();
    let b = Party::start("b").await;
    let rest = format!(
        "[daemon.listener]\n{listener}\n{PARTIES}{a}{b}\n[[transfers]]\nfrom = \"a\"\nto = \"b\"\n",
        a = endpoint_a(dir.path(), &[&old_secret, &secret], "", ""),
        b = b.toml(dir.path(), "svc", ""),
    );
    let gw = match file_limit {
        None => Gateway::start_with(dir, &rest),
        Some(n) => Gateway::start_with_file_limit(dir, &rest, n),
    };
    Bench {
        gw,
        b,
        old_secret,
        secret,
    }
}

/// A client that sent the start of a request and waits.
fn half_open(port: u16, partial: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(partial.as_bytes()).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Whether the daemon still holds this connection open (without waiting).
fn held(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 512];
    matches!(s.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A signed webhook that may fail to connect (no unwrap): Some(status).
async fn try_post_signed(bench: &Bench, msg_id: &str, body: &[u8]) -> Option<u16> {
    let s = Secret::parse(&bench.secret).unwrap();
    let ts = now();
    let r = reqwest::Client::new()
        .post(bench.hook())
        .header("content-type", "application/json")
        .header(sign::HEADER_ID, msg_id)
        .header(sign::HEADER_TIMESTAMP, ts.to_string())
        .header(sign::HEADER_SIGNATURE, sign::sign(&s, msg_id, ts, body))
        .body(body.to_vec())
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

/// 300 half-open connections against a daemon whose open-file limit (256)
/// they would exhaust: the partner listener's cap is lowered to fit the
/// limit, the flood only pushes its own older connections out, and a
/// valid webhook, `/health` and the admin API answer while it holds. The
/// header deadline (120 s) is far beyond the 30 s the answers are given:
/// they do not come from the slow clients being timed out.
#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_do_not_lock_out_webhooks_health_or_admin() {
    let bench = bench_listener("header_read_timeout_secs = 120", Some(256)).await;
    let port = bench.gw.port;
    let mut slow: Vec<_> = (0..300)
        .map(|_| {
            half_open(
                port,
                "POST /hooks/a HTTP/1.1\r\nHost: deskbridge\r\nContent-Le",
            )
        })
        .collect();

    eventually("the admin API answers", 30, || async {
        match reqwest::get(bench.gw.admin_url("/status")).await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        }
    })
    .await;
    let health = format!("http://127.0.0.1:{port}/health");
    eventually("/health answers", 30, || async {
        match reqwest::get(&health).await {
            Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|t| t == "ok"),
            Err(_) => false,
        }
    })
    .await;
    let b = body(&created("R-1", "Till 3 does not print", ""));
    eventually("a valid webhook is accepted", 30, || async {
        try_post_signed(&bench, "msg_flood", &b).await == Some(200)
    })
    .await;
    settle(&bench, 1).await;

    // The flood holds no more than the cap fitted to the file limit:
    // 256 - 32 (admin) - 128 (the rest of the daemon) = 96.
    let open = slow.iter_mut().map(held).filter(|h| *h).count();
    assert!(open <= 96, "{open} half-open connections still held");
    // ... and holds them still: the answers above came past the flood,
    // not after it had been timed out.
    assert!(open > 0, "the daemon closed every half-open connection");
    let log = bench.gw.log();
    assert!(log.contains("the open-file limit is too low"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}

/// Slow clients are cut off: headers that do not end, a body that does
/// not come, a kept-alive connection left idle; an honest sender is
/// served right after.
#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_slow_bodies_and_idle_connections_are_cut_off() {
    use std::io::{Read, Write};
    let bench = bench_listener(
        "header_read_timeout_secs = 1\nbody_read_timeout_secs = 1",
        None,
    )
    .await;
    let port = bench.gw.port;
    // Blocking reads with a generous deadline: each must end (closed, or
    // answered) long before it.
    let wait = |s: &mut std::net::TcpStream| -> String {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the daemon kept the connection: {e}"),
        }
        String::from_utf8_lossy(&out).into_owned()
    };

    let mut headers = half_open(port, "POST /hooks/a HTTP/1.1\r\nHost: deskbridge\r\n");
    let got = wait(&mut headers);
    assert!(!got.contains("200 OK"), "{got}");

    let mut body = half_open(
        port,
        "POST /hooks/a HTTP/1.1\r\nHost: deskbridge\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\"",
    );
    let got = wait(&mut body);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("body_read_timeout_secs"), "{got}");

    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: deskbridge\r\n\r\n")
        .unwrap();
    let got = wait(&mut idle);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");

    let b = body_of_created();
    assert_eq!(try_post_signed(&bench, "msg_after", &b).await, Some(200));
    settle(&bench, 1).await;
}

fn body_of_created() -> Vec<u8> {
    body(&created("R-2", "Scale shows 0", ""))
}
