//! Live: a sample desk (the service company) linked with a real Request
//! Tracker 5 (the vendor) through the REST connector and its RT profile.
//! RT is started by scripts/test.sh (scripts/services/rt.sh), which writes
//! /run/deskbridge-test/rt.env.
mod common;

use common::*;
use deskbridge::event::{Audience, Status};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const ENV_FILE: &str = "/run/deskbridge-test/rt.env";

struct Rt {
    /// REST2 base.
    rest: String,
    /// The service account deskbridge acts as, and its token.
    user: String,
    token: String,
    queue: String,
    /// RT's own user (root), who writes as the vendor's staff.
    root_user: String,
    root_password: String,
    http: reqwest::Client,
}

/// RT's settings, or `None` when the test must be skipped (outside CI).
fn rt() -> Option<Rt> {
    let text = match std::fs::read_to_string(ENV_FILE) {
        Ok(t) => t,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("{ENV_FILE}: {e}; scripts/test.sh starts RT (bash scripts/services/rt.sh start)");
            }
            eprintln!(
                "\n!!!!! SKIPPED: no {ENV_FILE} ({e}). Run `bash scripts/services/rt.sh start` (scripts/test.sh does) to test against Request Tracker. !!!!!\n"
            );
            return None;
        }
    };
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |k: &str| {
        vars.get(k)
            .unwrap_or_else(|| panic!("{ENV_FILE} has no {k}"))
            .to_string()
    };
    Some(Rt {
        rest: get("RT_REST_URL"),
        user: get("RT_USER"),
        token: get("RT_TOKEN"),
        queue: get("RT_QUEUE"),
        root_user: get("RT_ROOT_USER"),
        root_password: get("RT_ROOT_PASSWORD"),
        http: reqwest::Client::new(),
    })
}

impl Rt {
    /// A request as root (not deskbridge's service account).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.rest))
            .basic_auth(&self.root_user, Some(&self.root_password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (code, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    async fn ticket(&self, id: &str) -> Value {
        self.get(&format!("/ticket/{id}")).await
    }

    /// A correspond (public) or comment (internal) by root.
    async fn write(&self, id: &str, what: &str, text: &str) {
        let (code, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/ticket/{id}/{what}"),
                Some(json!({"Content": text, "ContentType": "text/plain"})),
            )
            .await;
        assert!(code == 201 || code == 200, "{what} on {id}: {code} {v}");
    }

    async fn set_status(&self, id: &str, status: &str) {
        let (code, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("/ticket/{id}"),
                Some(json!({ "Status": status })),
            )
            .await;
        assert_eq!(code, 200, "status of {id}: {v}");
        assert!(v.to_string().contains("Status changed"), "{v}");
    }

    /// The ticket's transactions, with the text of those that carry one
    /// (at `/Content`).
    async fn history(&self, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for page in 1.. {
            let v = self
                .get(&format!(
                    "/ticket/{id}/history?fields=Type,Creator,Created&per_page=100&page={page}"
                ))
                .await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if n < 100 {
                break;
            }
        }
        for t in &mut out {
            if ["Create", "Correspond", "Comment"].contains(&t["Type"].as_str().unwrap_or("")) {
                let a = self
                    .get(&format!(
                        "/transaction/{}/attachments?fields=ContentType,Content",
                        t["id"].as_str().unwrap()
                    ))
                    .await;
                let text = a["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["ContentType"] == "text/plain")
                    .and_then(|p| p["Content"].as_str())
                    .unwrap_or_default()
                    .to_string();
                t["Content"] = Value::String(text);
            }
        }
        out
    }

    async fn find_by_subject(&self, subject: &str) -> Option<String> {
        let query = format!(
            "Queue='{}' AND Subject='{}'",
            self.queue,
            subject.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let v = self
            .get(&format!(
                "/tickets?query={}",
                url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
            ))
            .await;
        v["items"]
            .as_array()
            .unwrap()
            .first()
            .map(|i| i["id"].as_str().unwrap().to_string())
    }
}

fn texts_containing(history: &[Value], kind: &str, text: &str) -> Vec<Value> {
    history
        .iter()
        .filter(|t| t["Type"] == kind && t["Content"].as_str().is_some_and(|c| c.contains(text)))
        .cloned()
        .collect()
}

/// Whether `f` became true before `secs` passed.
async fn within<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_desk_and_rt_relay_both_ways_under_policy() {
    let Some(rt) = rt() else { return };
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("rt.token");
    std::fs::write(&token_file, &rt.token).unwrap();
    let conf = format!(
        r#"{PARTIES}{desk}
[endpoints.rt]
party = "vendor"
kind = "rest"
service_account = "{user}"
[endpoints.rt.rest]
profile = "rt"
base_url = "{url}"
credentials = {{ file = "{token}" }}
project = "{queue}"
poll_secs = 1
rate_limit_per_minute = 1200
timeout_secs = 10
# RT's default lifecycle has no status "nosuch": a change to "waiting" cannot take
statuses = {{ outbound = {{ waiting = "nosuch" }} }}

[[transfers]]
from = "desk"
to = "rt"
"#,
        desk = desk.toml(dir.path(), "svc", ""),
        url = rt.rest,
        user = rt.user,
        token = token_file.display(),
        queue = rt.queue,
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // 1. Transfer: the desk's ticket becomes an RT ticket.
    let subject = format!(
        "Scale shows 'wrong' weight {}",
        uuid::Uuid::new_v4().simple()
    );
    let t = desk.desk.create_ticket(
        &subject,
        "Calibration lost after a power cut",
        &[("client_phone", "+1 555 0100")],
        "Dana",
    );
    let mut ticket_id = None;
    for _ in 0..300 {
        ticket_id = rt.find_by_subject(&subject).await;
        if ticket_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = ticket_id.unwrap_or_else(|| panic!("no RT ticket:\n{}", gw.log()));
    let ticket = rt.ticket(&id).await;
    assert_eq!(ticket["Subject"], subject.as_str());
    assert_eq!(
        ticket["Creator"]["id"],
        rt.user.as_str(),
        "written as the service account"
    );
    let history = rt.history(&id).await;
    let created = texts_containing(&history, "Create", "Calibration lost");
    assert_eq!(created.len(), 1, "{history:#?}");
    let description = created[0]["Content"].as_str().unwrap();
    assert!(!description.contains("555 0100"), "the phone stays home");
    assert!(description.contains("[deskbridge:"), "{description}");
    eventually("the link knows the RT ticket", 10, || async {
        let links = gw.get("/links").await.to_string();
        links.contains(&format!("\"{id}\""))
    })
    .await;

    // 2. A comment for the partner is a correspond; an internal one does not cross.
    desk.desk.comment(
        &t,
        "Please bring a spare load cell",
        Audience::Partner,
        "Dana",
        &[],
    );
    desk.desk.comment(
        &t,
        "Premium SLA, bill the client",
        Audience::Internal,
        "Dana",
        &[],
    );
    eventually("the partner comment is an RT correspond", 30, || async {
        texts_containing(&rt.history(&id).await, "Correspond", "spare load cell").len() == 1
    })
    .await;
    let reply = texts_containing(&rt.history(&id).await, "Correspond", "spare load cell").remove(0);
    assert_eq!(reply["Creator"]["id"], rt.user.as_str());
    assert!(reply["Content"]
        .as_str()
        .unwrap()
        .contains("Dana (Service Co)"));

    // 3. RT's own users write: a correspond crosses (as an internal note
    //    marked with the vendor's name), a comment does not.
    rt.write(&id, "correspond", "Load cell ordered, on site Friday")
        .await;
    rt.write(&id, "comment", "Our cost: 40 EUR").await;
    let arrived = within(30, || async {
        desk.desk
            .ticket(&t)
            .unwrap()
            .comments
            .iter()
            .any(|c| c.body.contains("on site Friday"))
    })
    .await;
    assert!(
        arrived,
        "the RT correspond did not reach the desk:\n{}\n{}",
        desk.desk.render(&t),
        gw.log()
    );
    let dt = desk.desk.ticket(&t).unwrap();
    let c = dt
        .comments
        .iter()
        .find(|c| c.body.contains("on site Friday"))
        .unwrap();
    assert_eq!(c.audience, Audience::Internal);
    assert!(c.author.contains("Vendor Co"), "{}", c.author);

    // 4. RT's status change reaches the desk.
    rt.set_status(&id, "resolved").await;
    eventually("the desk shows Resolved", 30, || async {
        desk.desk.ticket(&t).unwrap().status == Status::Resolved
    })
    .await;

    // 5. Several polling rounds later: no echo either way, nothing private crossed.
    let history_before = rt.history(&id).await.len();
    let comments_before = desk.desk.ticket(&t).unwrap().comments.len();
    let received_before = desk.desk.received();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let history = rt.history(&id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(history.len(), history_before, "RT: {history:#?}");
    assert_eq!(
        dt.comments.len(),
        comments_before,
        "{}",
        desk.desk.render(&t)
    );
    assert_eq!(desk.desk.received(), received_before);
    assert_eq!(
        texts_containing(&history, "Correspond", "spare load cell").len(),
        1
    );
    assert!(history
        .iter()
        .all(|h| !h["Content"].as_str().unwrap_or("").contains("Premium SLA")));
    assert_eq!(
        dt.comments
            .iter()
            .filter(|c| c.body.contains("on site Friday"))
            .count(),
        1
    );
    assert!(!dt.comments.iter().any(|c| c.body.contains("40 EUR")));
    assert_eq!(dt.status, Status::Resolved);
    assert!(gw.idle().await);

    // 6. A status RT refuses (answering 200) is a dead letter with the reason.
    desk.desk.set_status(&t, Status::Waiting, "Dana");
    eventually("a dead letter", 30, || async {
        !gw.get("/dead").await.as_array().unwrap().is_empty()
    })
    .await;
    let dead = gw.get("/dead").await;
    let error = dead[0]["error"].as_str().unwrap();
    assert_eq!(dead[0]["dest"], "rt");
    assert!(
        error.contains("did not apply status nosuch (for waiting)")
            && error.contains("still at status resolved"),
        "{error}"
    );
    assert_eq!(rt.ticket(&id).await["Status"], "resolved");
}
