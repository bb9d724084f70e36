//! Live, with faults: a sample desk linked with a real Redmine 5, Request
//! Tracker 5 and django-helpdesk 2.6 through a proxy that makes the
//! product answer 429 with Retry-After, 500 (before the product sees the
//! request, and after it applied it), or not at all (before, and after it
//! applied it), on creations, comments, polls and status changes. Each
//! product is read back directly: every ticket, comment and status change
//! is there exactly once, nothing private crossed, nothing echoed, and
//! every armed fault was served.
/// What an idle RT ↔ Redmine pair reads each round.
mod idle;

use crate::common::djhd::*;
use crate::common::faulty::{Fault, FaultyProxy};
use crate::common::redmine::*;
use crate::common::rest::*;
use crate::common::rt::*;
use crate::common::*;
use deskbridge::event::Status;
use serde_json::{json, Value};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

/// Where each of deskbridge's requests goes in one product: (method, a
/// piece of the path and query, a piece of the body).
struct Routes {
    create: (&'static str, &'static str),
    comment: (&'static str, &'static str),
    status: (&'static str, &'static str, &'static str),
    list: &'static str,
}

enum Product {
    Redmine(Redmine, String),
    Rt(Rt),
    Djhd(Djhd),
}

impl Product {
    fn routes(&self) -> Routes {
        match self {
            Product::Redmine(..) => Routes {
                create: ("POST", "/issues.json"),
                comment: ("PUT", "/issues/"),
                status: ("PUT", "/issues/", "status_id"),
                list: "updated_on=",
            },
            Product::Rt(_) => Routes {
                create: ("POST", "/REST/2.0/ticket"),
                comment: ("POST", "/correspond"),
                status: ("PUT", "/REST/2.0/ticket/", "Status"),
                list: "LastUpdated%20%3E%3D",
            },
            Product::Djhd(_) => Routes {
                create: ("POST", "/api/tickets/"),
                comment: ("POST", "/api/followups/"),
                status: ("POST", "/api/followups/", "new_status"),
                list: "/api/followups/?page=",
            },
        }
    }

    fn base_url(&self) -> &str {
        match self {
            Product::Redmine(rm, _) => &rm.url,
            Product::Rt(rt) => &rt.rest,
            Product::Djhd(dh) => &dh.url,
        }
    }

    /// `[endpoints.NAME.rest]` lines beyond the common ones: a short
    /// timeout, so that a hang costs seconds.
    fn extra(&self) -> String {
        let own = match self {
            Product::Djhd(dh) => dh.extra(),
            _ => String::new(),
        };
        format!("{own}timeout_secs = 3\n")
    }

    async fn gateway(&self, url: &str, extra: &str) -> (Party, Gateway) {
        let ep = match self {
            Product::Redmine(rm, key) => RestEndpoint {
                name: "redmine",
                service_account: REDMINE_SERVICE_LOGIN,
                base_url: url,
                credentials: key,
                credentials_file: "redmine.key",
                project: &rm.project,
                extra,
            },
            Product::Rt(rt) => RestEndpoint {
                name: "rt",
                service_account: &rt.user,
                base_url: url,
                credentials: &rt.token,
                credentials_file: "rt.token",
                project: &rt.queue,
                extra,
            },
            Product::Djhd(dh) => dh.endpoint(url, extra),
        };
        desk_and_gateway(ep).await
    }

    /// Every ticket titled `subject` (more than one would be a doubled transfer).
    async fn tickets_titled(&self, subject: &str) -> Vec<String> {
        match self {
            Product::Redmine(rm, _) => {
                let v = rm
                    .get(&format!(
                        "/issues.json?project_id={}&status_id=*&subject=~{}",
                        rm.project,
                        url::form_urlencoded::byte_serialize(subject.as_bytes())
                            .collect::<String>()
                    ))
                    .await;
                ids(&v["issues"], |i| i["id"].to_string())
            }
            Product::Rt(rt) => {
                let query = format!("Queue='{}' AND Subject='{subject}'", rt.queue);
                let v = rt
                    .get(&format!(
                        "/tickets?query={}",
                        url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
                    ))
                    .await;
                ids(&v["items"], |i| i["id"].as_str().unwrap().to_string())
            }
            Product::Djhd(dh) => {
                let (code, v) = dh
                    .call(
                        reqwest::Method::GET,
                        "/tickets/?page=last&page_size=1000",
                        None,
                    )
                    .await;
                assert_eq!(code, 200, "{v}");
                let all = ids(&v["results"], |t| {
                    if t["title"] == subject {
                        t["id"].to_string()
                    } else {
                        String::new()
                    }
                });
                all.into_iter().filter(|i| !i.is_empty()).collect()
            }
        }
    }

    /// How many of the ticket's comments contain `text`.
    async fn comments_containing(&self, id: &str, text: &str) -> usize {
        match self {
            Product::Redmine(rm, _) => notes_containing(&rm.issue(id).await, text).len(),
            Product::Rt(rt) => {
                let h = rt.history(id).await;
                texts_containing(&h, "Correspond", text).len()
                    + texts_containing(&h, "Comment", text).len()
            }
            Product::Djhd(dh) => followups_containing(&dh.followups(id).await, text).len(),
        }
    }

    /// The vendor's staff write a public reply in the product itself.
    async fn vendor_replies(&self, id: &str, text: &str) {
        match self {
            Product::Redmine(rm, _) => rm.put_issue(id, json!({ "notes": text })).await,
            Product::Rt(rt) => rt.write(id, "correspond", text).await,
            Product::Djhd(dh) => dh.follow_up(id, text, true, None).await,
        }
    }

    /// How many entries of the ticket record a change to "resolved".
    async fn resolutions(&self, id: &str) -> usize {
        match self {
            Product::Redmine(rm, _) => journals(&rm.issue(id).await)
                .iter()
                .filter(|j| {
                    j["details"].as_array().is_some_and(|d| {
                        d.iter()
                            .any(|d| d["name"] == "status_id" && d["new_value"] == "3")
                    })
                })
                .count(),
            Product::Rt(rt) => {
                let v = rt
                    .get(&format!(
                        "/ticket/{id}/history?fields=Type,Field,NewValue&per_page=100"
                    ))
                    .await;
                v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t["Type"] == "Status" && t["NewValue"] == "resolved")
                    .count()
            }
            Product::Djhd(dh) => dh
                .followups(id)
                .await
                .iter()
                .filter(|f| f["new_status"] == 3)
                .count(),
        }
    }

    async fn is_resolved(&self, id: &str) -> bool {
        match self {
            Product::Redmine(rm, _) => rm.issue(id).await["status"]["id"] == 3,
            Product::Rt(rt) => rt.ticket(id).await["Status"] == "resolved",
            Product::Djhd(dh) => dh.ticket(id).await["status"] == 3,
        }
    }
}

fn ids(list: &Value, id: impl Fn(&Value) -> String) -> Vec<String> {
    list.as_array().unwrap().iter().map(id).collect()
}

async fn faults_lose_and_double_nothing(p: Product) {
    let proxy = FaultyProxy::start(p.base_url()).await;
    let extra = p.extra();
    let (desk, gw) = p.gateway(&proxy.url, &extra).await;
    let r = p.routes();

    // 1. Transfer: a 429 with Retry-After, then the product creates the
    //    ticket and answers 500. One ticket, found again by its marker.
    proxy.arm(
        r.create.0,
        r.create.1,
        None,
        &[Fault::TooMany(1), Fault::FailAfter],
    );
    let subject = format!("Faulty scale {}", uuid::Uuid::new_v4().simple());
    let t = create_ticket(&desk, &subject);
    let id = first_some(300, POLL, || async {
        p.tickets_titled(&subject).await.into_iter().next()
    })
    .await
    .unwrap_or_else(|| panic!("no ticket in the product:\n{}", gw.log()));
    link_knows(&gw, "the link knows the product's ticket", &id).await;
    eventually("the gateway is idle after the transfer", 60, || gw.idle()).await;
    assert_eq!(
        p.tickets_titled(&subject).await,
        std::slice::from_ref(&id),
        "one ticket"
    );

    // 2. A comment for the partner: a 500 before the product sees it, then
    //    the product writes it and never answers (deskbridge times out).
    //    Once in the product; the internal note never.
    proxy.arm(
        r.comment.0,
        r.comment.1,
        Some("spare load cell"),
        &[Fault::Fail, Fault::HangAfter],
    );
    comment_for_partner_and_internally(&desk, &t);
    eventually("the partner comment is in the product", 60, || async {
        p.comments_containing(&id, "spare load cell").await == 1
    })
    .await;

    // 3. Polls: 429 with Retry-After, 500, a hang; then the vendor's reply
    //    reaches the desk, once.
    proxy.arm(
        "GET",
        r.list,
        None,
        &[Fault::TooMany(1), Fault::Fail, Fault::Hang],
    );
    p.vendor_replies(&id, "Load cell ordered, on site Friday")
        .await;
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the vendor's reply").await;

    // 4. Resolved at the desk: the product applies it and answers 500; the
    //    retry finds it applied and writes nothing more.
    proxy.arm(
        r.status.0,
        r.status.1,
        Some(r.status.2),
        &[Fault::FailAfter],
    );
    desk.desk.set_status(&t, Status::Resolved, "Dana");
    eventually("the product shows resolved", 60, || p.is_resolved(&id)).await;

    // 5. Quiet rounds: nothing doubled, nothing echoed, every fault served.
    let desk_before = DeskBefore::take(&desk, &gw, &t).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dt = desk.desk.ticket(&t).unwrap();
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_desk_after_quiet_rounds(&dt);
    assert_eq!(p.tickets_titled(&subject).await, std::slice::from_ref(&id));
    assert_eq!(p.comments_containing(&id, "spare load cell").await, 1);
    assert_eq!(p.comments_containing(&id, "Premium SLA").await, 0);
    assert_eq!(p.comments_containing(&id, "on site Friday").await, 1);
    assert_eq!(p.resolutions(&id).await, 1, "one status change");
    assert!(
        proxy.unserved().is_empty(),
        "faults never served: {:?}\nserved: {:?}\n{}",
        proxy.unserved(),
        proxy.served(),
        gw.log()
    );
    // The operator saw them: the gateway's log names the failures.
    let log = gw.log();
    assert!(log.contains("answered 429"), "{log}");
    assert!(log.contains("answered 500"), "{log}");
    // Every fault was retried, none became a dead letter.
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
    // The poll failed under the faults and recovered: the status says so.
    let polled = status["pollers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert!(polled["failing"].is_null(), "{status}");
    assert!(polled["rounds"].as_u64().unwrap() > 3, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redmine_under_faults() {
    let Some(rm) = redmine() else { return };
    let key = rm.service_key().await;
    faults_lose_and_double_nothing(Product::Redmine(rm, key)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rt_under_faults() {
    let Some(rt) = rt() else { return };
    faults_lose_and_double_nothing(Product::Rt(rt)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn django_helpdesk_under_faults() {
    let Some(dh) = djhd() else { return };
    faults_lose_and_double_nothing(Product::Djhd(dh)).await;
}
