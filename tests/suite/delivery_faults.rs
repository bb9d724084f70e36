//! A destination that misbehaves, against the real binary: a refusal
//! becomes a dead letter that holds back only its own link and can be
//! replayed; 429, 500 and a hanging partner are retried; a hanging
//! destination does not stop another one. Exactly-once is counted by what
//! the destination desk holds (tickets, comments), not by raw deliveries.

use crate::common::{eventually, Gateway, Party, PARTIES};
use deskbridge::event::Audience;
use deskbridge::tools::sample_desk::{Fault, SampleDesk};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `a` (the client's desk) hands every new ticket to `b` (and to `c` when
/// asked for); only `a`'s users write.
struct Net {
    gw: Gateway,
    a: Party,
    b: Party,
    c: Option<Party>,
}

async fn net(with_c: bool) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let a = Party::start("a").await;
    let b = Party::start("b").await;
    let c = if with_c {
        Some(Party::start("c").await)
    } else {
        None
    };
    let mut rest = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"a\"\nto = \"b\"\n",
        a.toml(dir.path(), "client", ""),
        b.toml(dir.path(), "svc", ""),
    );
    if let Some(c) = &c {
        rest.push_str(&c.toml(dir.path(), "vendor", ""));
        rest.push_str("\n[[transfers]]\nfrom = \"a\"\nto = \"c\"\n");
    }
    let gw = Gateway::start_with(dir, &rest);
    a.connect(&gw);
    Net { gw, a, b, c }
}

impl Net {
    /// A ticket opened in `a`, once it exists in every destination.
    async fn ticket(&self, subject: &str) -> String {
        let t = self.a.desk.create_ticket(subject, "", &[], "alice");
        let dests: Vec<&SampleDesk> = [Some(&self.b), self.c.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| &p.desk)
            .collect();
        eventually(&format!("ticket {t} handed over"), 15, || async {
            dests.iter().all(|d| partner_ticket(d, &t).is_some()) && self.settled().await
        })
        .await;
        t
    }

    /// A note for the partner on `a`'s ticket.
    fn say(&self, ticket: &str, body: &str) {
        self.a
            .desk
            .comment(ticket, body, Audience::Partner, "alice", &[]);
    }

    /// `a` has handed everything over and nothing is queued.
    async fn settled(&self) -> bool {
        self.a.desk.unsent() == 0 && self.gw.idle().await
    }

    async fn dest(&self, name: &str) -> Value {
        self.gw.status().await["destinations"][name].clone()
    }

    /// The link of `a`'s ticket to `dest`.
    async fn link_of(&self, ticket: &str, dest: &str) -> String {
        let links = self.gw.get("/links").await;
        links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["upstream"]["ticket"] == ticket && l["downstream"]["endpoint"] == dest)
            .unwrap_or_else(|| panic!("no link of {ticket} to {dest} in {links}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The desk's ticket linked to `a`'s ticket `upstream`.
fn partner_ticket(desk: &SampleDesk, upstream: &str) -> Option<String> {
    desk.tickets()
        .into_iter()
        .find(|t| t.partner.as_ref().and_then(|p| p.1.as_deref()) == Some(upstream))
        .map(|t| t.id)
}

/// Comment bodies on the desk's ticket linked to `upstream`, in order.
fn comments(desk: &SampleDesk, upstream: &str) -> Vec<String> {
    partner_ticket(desk, upstream)
        .and_then(|id| desk.ticket(&id))
        .map(|t| t.comments.into_iter().map(|c| c.body).collect())
        .unwrap_or_default()
}

fn cli_ok(gw: &Gateway, args: &[&str]) -> String {
    let out = gw.cli(args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "deskbridge {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_comment_is_a_dead_letter_that_holds_only_its_link_until_replayed() {
    let mut n = net(false).await;
    let t1 = n.ticket("Till 1 does not print").await;
    let t2 = n.ticket("Till 2 does not print").await;
    let link1 = n.link_of(&t1, "b").await;
    let refusal = "custom field 'store_code' is required";
    n.b.desk
        .set_fault(Some(Fault::Status(400, refusal.into())), Some(1));

    n.say(&t1, "c1: printer head replaced?");
    eventually("a dead letter", 15, || async {
        n.gw.get("/dead").await.as_array().unwrap().len() == 1 && n.settled().await
    })
    .await;

    // `deskbridge dead` shows it with the partner's own words.
    let listing = cli_ok(&n.gw, &["dead"]);
    assert!(listing.contains(refusal), "{listing}");
    assert!(listing.contains("400"), "{listing}");
    let dead: Value = serde_json::from_str(&cli_ok(&n.gw, &["dead", "--json"])).unwrap();
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d["dest"], "b");
    assert_eq!(d["link"], link1.as_str());
    assert_eq!(d["kind"], "comment");
    assert_eq!(d["attempts"], 1, "a 400 is not retried: {d}");
    assert!(d["error"].as_str().unwrap().contains(refusal), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    assert!(listing.contains(&id), "{listing}");
    let s = n.dest("b").await;
    assert_eq!(s["blocked_links"], 1, "{s}");
    assert_eq!(s["dead_lettered"], 1, "{s}");

    // Later events of link 1 wait behind it; link 2 to the same desk flows.
    n.say(&t1, "c2: ordered a new one");
    n.say(&t1, "c3: fitted, please check");
    n.say(&t2, "d1: first note on till 2");
    n.say(&t2, "d2: second note on till 2");
    eventually("link 2's notes delivered", 15, || async {
        comments(&n.b.desk, &t2).len() == 2 && n.a.desk.unsent() == 0
    })
    .await;
    assert_eq!(
        comments(&n.b.desk, &t2),
        ["d1: first note on till 2", "d2: second note on till 2"]
    );
    assert!(comments(&n.b.desk, &t1).is_empty());
    let l1 = n.gw.get(&format!("/links/{link1}")).await;
    assert_eq!(l1["queued"]["b"], 2, "{l1}");
    assert_eq!(l1["dead"].as_array().unwrap().len(), 1, "{l1}");
    assert_eq!(n.dest("b").await["queued"], 2);
    // 2 transfers, the refused note, link 2's two notes: c2 and c3 were
    // not even tried.
    assert_eq!(n.b.desk.received(), 5);

    // A restart does not let them go: the dead letter still holds link 1,
    // and link 2 still flows.
    n.gw.kill9();
    n.gw.spawn();
    n.say(&t2, "d3: after a restart");
    eventually("link 2 flows after the restart", 15, || async {
        comments(&n.b.desk, &t2).len() == 3 && n.a.desk.unsent() == 0
    })
    .await;
    assert!(comments(&n.b.desk, &t1).is_empty());
    let s = n.dest("b").await;
    assert_eq!(s["blocked_links"], 1, "{s}");
    assert_eq!(s["queued"], 2, "{s}");
    assert_eq!(n.b.desk.received(), 6);

    // The partner fixes its side; the operator replays.
    n.b.desk.set_fault(None, None);
    let out = cli_ok(&n.gw, &["replay", &id]);
    assert!(out.contains(&id), "{out}");
    eventually("link 1's notes delivered after the replay", 15, || async {
        comments(&n.b.desk, &t1).len() >= 3 && n.settled().await
    })
    .await;
    assert_eq!(
        comments(&n.b.desk, &t1),
        [
            "c1: printer head replaced?",
            "c2: ordered a new one",
            "c3: fitted, please check"
        ]
    );
    assert_eq!(comments(&n.b.desk, &t2).len(), 3);
    assert_eq!(n.b.desk.tickets().len(), 2);
    assert_eq!(n.b.desk.received(), 9);
    assert!(n.gw.get("/dead").await.as_array().unwrap().is_empty());
    let s = n.dest("b").await;
    assert_eq!(s["blocked_links"], 0, "{s}");
    assert_eq!(s["queued"], 0, "{s}");
    assert!(cli_ok(&n.gw, &["dead"]).contains("no dead letters"));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_transfer_holds_its_notes_and_replay_creates_the_ticket_once() {
    let n = net(false).await;
    let refusal = "category 'Scales' is unknown here";
    n.b.desk
        .set_fault(Some(Fault::Status(422, refusal.into())), Some(1));
    let t1 =
        n.a.desk
            .create_ticket("Scale broken", "aisle 3", &[], "alice");
    eventually("the refused transfer is a dead letter", 15, || async {
        n.gw.get("/dead").await.as_array().unwrap().len() == 1 && n.settled().await
    })
    .await;
    let dead = n.gw.get("/dead").await;
    assert_eq!(dead[0]["kind"], "ticket_created", "{dead}");
    assert!(
        dead[0]["error"].as_str().unwrap().contains(refusal),
        "{dead}"
    );
    assert!(n.b.desk.tickets().is_empty());
    // The link exists, its partner ticket does not yet.
    let link = n.link_of(&t1, "b").await;
    assert!(n.gw.get(&format!("/links/{link}")).await["downstream"]["ticket"].is_null());

    // Notes written meanwhile wait for the ticket instead of failing.
    n.say(&t1, "n1");
    n.say(&t1, "n2");
    let t2 = n.a.desk.create_ticket("Another scale", "", &[], "alice");
    eventually("the other ticket handed over", 15, || async {
        partner_ticket(&n.b.desk, &t2).is_some() && n.a.desk.unsent() == 0
    })
    .await;
    assert_eq!(n.dest("b").await["queued"], 2);
    assert_eq!(n.gw.get("/dead").await.as_array().unwrap().len(), 1);

    n.b.desk.set_fault(None, None);
    let id = dead[0]["id"].as_str().unwrap();
    cli_ok(&n.gw, &["replay", id]);
    eventually("the ticket and its notes", 15, || async {
        comments(&n.b.desk, &t1).len() >= 2 && n.settled().await
    })
    .await;
    assert_eq!(comments(&n.b.desk, &t1), ["n1", "n2"]);
    assert_eq!(n.b.desk.tickets().len(), 2);
    let subjects: Vec<String> = n.b.desk.tickets().into_iter().map(|t| t.subject).collect();
    assert!(
        subjects.contains(&"Scale broken".to_string()),
        "{subjects:?}"
    );
    assert!(partner_ticket(&n.b.desk, &t2).is_some());
    let l = n.gw.get(&format!("/links/{link}")).await;
    assert_eq!(
        l["downstream"]["ticket"].as_str(),
        partner_ticket(&n.b.desk, &t1).as_deref(),
        "{l}"
    );
    assert!(n.gw.get("/dead").await.as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_delivery_waits_for_retry_after_and_lands_once() {
    let n = net(false).await;
    let t1 = n.ticket("Lift 2 stuck").await;
    n.b.desk.set_fault(
        Some(Fault::RateLimited {
            retry_after_secs: 1,
        }),
        Some(1),
    );
    let started = Instant::now();
    n.say(&t1, "technician is on the way");
    eventually("the 429 shows in status", 15, || async {
        let f = n.dest("b").await["failing"].clone();
        f.as_str().is_some_and(|f| f.contains("429"))
    })
    .await;
    eventually("the note delivered", 15, || async {
        !comments(&n.b.desk, &t1).is_empty()
    })
    .await;
    // Our own first backoff is at most 750 ms: only Retry-After waits 1 s.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    eventually("settled", 15, || n.settled()).await;
    assert_eq!(comments(&n.b.desk, &t1), ["technician is on the way"]);
    // The transfer, the 429, the retry.
    assert_eq!(n.b.desk.received(), 3);
    let s = n.dest("b").await;
    assert!(s["failing"].is_null(), "{s}");
    assert_eq!(s["dead_lettered"], 0, "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_shown_in_status_and_delivered_once() {
    let n = net(false).await;
    let t1 = n.ticket("GPS tracker offline").await;
    n.b.desk
        .set_fault(Some(Fault::Status(500, "database is down".into())), Some(3));
    n.say(&t1, "please reboot the tracker");
    // While it lasts, `deskbridge status` says so, with the partner's text.
    eventually("status shows the failure", 15, || async {
        let out = cli_ok(&n.gw, &["status"]);
        out.contains("failing since")
            && out.contains("database is down")
            && out.contains("the oldest waiting for")
    })
    .await;
    eventually("the note delivered", 15, || async {
        !comments(&n.b.desk, &t1).is_empty() && n.settled().await
    })
    .await;
    assert_eq!(comments(&n.b.desk, &t1), ["please reboot the tracker"]);
    // The transfer, three 500s, the success.
    assert_eq!(n.b.desk.received(), 5);
    let s = n.dest("b").await;
    assert!(s["failing"].is_null(), "{s}");
    assert_eq!(s["dead_lettered"], 0, "{s}");
    assert!(n.gw.get("/dead").await.as_array().unwrap().is_empty());
    assert!(!cli_ok(&n.gw, &["status"]).contains("failing"));
    assert!(s.get("oldest_waiting_since").is_none(), "{s}");
    // One outage, one warning: the retries with the same reason are at
    // debug level.
    let log = n.gw.log();
    assert_eq!(log.matches("will retry").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_destination_does_not_stop_another_and_catches_up_once() {
    let n = net(true).await;
    let c = n.c.as_ref().unwrap();
    let t1 = n.ticket("Server room too hot").await;
    assert!(partner_ticket(&c.desk, &t1).is_some());
    let b_before = n.b.desk.received();

    n.b.desk.set_fault(Some(Fault::Hang), None);
    n.say(&t1, "p1");
    eventually("b hangs on p1", 15, || async {
        n.b.desk.received() > b_before
    })
    .await;
    n.say(&t1, "p2");
    n.say(&t1, "p3");
    eventually("c gets every note while b hangs", 15, || async {
        comments(&c.desk, &t1).len() >= 3
    })
    .await;
    assert_eq!(comments(&c.desk, &t1), ["p1", "p2", "p3"]);
    assert!(comments(&n.b.desk, &t1).is_empty());
    // The hung request is abandoned after timeout_secs and retried.
    eventually("b's timeout shows in status", 15, || async {
        let f = n.dest("b").await["failing"].clone();
        f.as_str().is_some_and(|f| f.contains("timeout"))
    })
    .await;
    assert!(comments(&n.b.desk, &t1).is_empty());
    let s = n.dest("b").await;
    assert_eq!(s["queued"], 3, "{s}");
    assert_eq!(n.dest("c").await["queued"], 0);

    n.b.desk.set_fault(None, None);
    eventually("b catches up", 20, || async {
        comments(&n.b.desk, &t1).len() >= 3 && n.settled().await
    })
    .await;
    assert_eq!(comments(&n.b.desk, &t1), ["p1", "p2", "p3"]);
    assert_eq!(comments(&c.desk, &t1), ["p1", "p2", "p3"]);
    assert_eq!(n.b.desk.tickets().len(), 1);
    assert_eq!(c.desk.tickets().len(), 1);
    assert!(n.dest("b").await["failing"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_delivery_holds_only_its_own_link_at_the_same_desk() {
    let n = net(false).await;
    let t1 = n.ticket("Fire alarm zone 4").await;
    let t2 = n.ticket("Fire alarm zone 5").await;
    let before = n.b.desk.received();
    // Only the next delivery hangs (until timeout_secs = 2 abandons it).
    n.b.desk.set_fault(Some(Fault::Hang), Some(1));
    n.say(&t1, "h1");
    eventually("b hangs on h1", 15, || async {
        n.b.desk.received() > before
    })
    .await;
    n.say(&t2, "f1");
    n.say(&t2, "f2");
    eventually("link 2 flows past the hung link", 15, || async {
        comments(&n.b.desk, &t2).len() >= 2
    })
    .await;
    // Still within the 2 s that h1 hangs.
    assert!(comments(&n.b.desk, &t1).is_empty());
    assert_eq!(comments(&n.b.desk, &t2), ["f1", "f2"]);
    eventually("h1 retried after the timeout", 15, || async {
        !comments(&n.b.desk, &t1).is_empty() && n.settled().await
    })
    .await;
    assert_eq!(comments(&n.b.desk, &t1), ["h1"]);
    assert_eq!(comments(&n.b.desk, &t2), ["f1", "f2"]);
}

/// A partner URL that moved: POSTs are answered 302 to a page that
/// answers GET with 200. Counts (POSTs, GETs).
async fn moved_partner(code: u16) -> (String, Arc<(AtomicUsize, AtomicUsize)>) {
    use axum::routing::{get, post};
    let hits = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/deskbridge",
            post(move || async move {
                h1.0.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::from_u16(code).unwrap(),
                    [("location", "/moved")],
                    "moved",
                )
            }),
        )
        .route(
            "/moved",
            get(move || async move {
                h2.1.fetch_add(1, Ordering::SeqCst);
                "<html>we moved</html>"
            })
            .post(|| async { "<html>we moved</html>" }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/deskbridge"), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_not_taken_for_a_delivery() {
    for code in [302u16, 307] {
        let (url, hits) = moved_partner(code).await;
        let dir = tempfile::tempdir().unwrap();
        let a = Party::start("a").await;
        let (_, secret) = deskbridge::connector::webhook::sign::Secret::generate();
        let secret_file = dir.path().join("m.out.secret");
        std::fs::write(&secret_file, secret).unwrap();
        let rest = format!(
            r#"{PARTIES}{a}
[endpoints.m]
party = "vendor"
kind = "webhook"
[endpoints.m.webhook]
url = "{url}"
timeout_secs = 2
outbound_secret = {{ file = "{f}" }}

[[transfers]]
from = "a"
to = "m"
"#,
            a = a.toml(dir.path(), "client", ""),
            f = secret_file.display(),
        );
        let gw = Gateway::start_with(dir, &rest);
        a.connect(&gw);
        a.desk.create_ticket("Scale broken", "", &[], "alice");
        eventually(&format!("{code}: a dead letter"), 15, || async {
            gw.get("/dead").await.as_array().unwrap().len() == 1
                && a.desk.unsent() == 0
                && gw.idle().await
        })
        .await;
        let dead = gw.get("/dead").await;
        let error = dead[0]["error"].as_str().unwrap();
        assert!(error.contains(&code.to_string()), "{dead}");
        assert!(
            error.contains("/moved"),
            "the new location is named: {dead}"
        );
        assert_eq!(gw.status().await["destinations"]["m"]["delivered"], 0);
        assert_eq!(hits.0.load(Ordering::SeqCst), 1);
        assert_eq!(hits.1.load(Ordering::SeqCst), 0, "followed to a GET");
    }
}
