//! Live: a sample desk (the service company) linked with a real Redmine 5
//! (the vendor) through the REST connector and its Redmine profile.
//! Redmine is started by scripts/test.sh (scripts/services/redmine.sh),
//! which writes /run/deskbridge-test/redmine.env.
mod common;

use common::*;
use deskbridge::event::{Audience, Status};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const ENV_FILE: &str = "/run/deskbridge-test/redmine.env";
/// The Redmine user deskbridge acts as (made by this test when missing).
const SERVICE_LOGIN: &str = "deskbridge";

struct Redmine {
    url: String,
    key: String,
    project: String,
    http: reqwest::Client,
}

/// Redmine's settings, or `None` when the test must be skipped (outside CI).
fn redmine() -> Option<Redmine> {
    let text = match std::fs::read_to_string(ENV_FILE) {
        Ok(t) => t,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("{ENV_FILE}: {e}; scripts/test.sh starts Redmine (bash scripts/services/redmine.sh start)");
            }
            eprintln!(
                "\n!!!!! SKIPPED: no {ENV_FILE} ({e}). Run `bash scripts/services/redmine.sh start` (scripts/test.sh does) to test against Redmine. !!!!!\n"
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
    Some(Redmine {
        url: get("REDMINE_URL"),
        key: get("REDMINE_API_KEY"),
        project: get("REDMINE_PROJECT"),
        http: reqwest::Client::new(),
    })
}

impl Redmine {
    /// A request as the admin user (not deskbridge's service account).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", &self.key);
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

    async fn put_issue(&self, id: &str, issue: Value) {
        let (code, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("/issues/{id}.json"),
                Some(json!({ "issue": issue })),
            )
            .await;
        assert!(code == 204 || code == 200, "PUT issue {id}: {code} {v}");
    }

    /// The service account's API key: the user and its membership of the
    /// test project are made when missing.
    async fn service_key(&self) -> String {
        let users = self
            .get(&format!("/users.json?name={SERVICE_LOGIN}&status="))
            .await;
        let existing = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == SERVICE_LOGIN)
            .map(|u| u["id"].as_u64().unwrap());
        let id = match existing {
            Some(id) => id,
            None => {
                let (code, v) = self
                    .call(
                        reqwest::Method::POST,
                        "/users.json",
                        Some(json!({"user": {
                            "login": SERVICE_LOGIN, "firstname": "Desk", "lastname": "Bridge",
                            "mail": "deskbridge@example.net", "password": "deskbridge-test-pw-1",
                            "must_change_passwd": false
                        }})),
                    )
                    .await;
                assert_eq!(code, 201, "creating the service account: {v}");
                v["user"]["id"].as_u64().unwrap()
            }
        };
        let roles = self.get("/roles.json").await;
        let manager = roles["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "Manager")
            .expect("Redmine's default data has a Manager role")["id"]
            .clone();
        let members = self
            .get(&format!(
                "/projects/{}/memberships.json?limit=100",
                self.project
            ))
            .await;
        let member = members["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user"]["id"].as_u64() == Some(id));
        if !member {
            let (code, v) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/projects/{}/memberships.json", self.project),
                    Some(json!({"membership": {"user_id": id, "role_ids": [manager]}})),
                )
                .await;
            assert_eq!(code, 201, "adding the service account to the project: {v}");
        }
        // Shown to an admin (and made on first access).
        let user = self.get(&format!("/users/{id}.json")).await;
        user["user"]["api_key"]
            .as_str()
            .expect("an admin sees api_key")
            .to_string()
    }

    async fn issue(&self, id: &str) -> Value {
        self.get(&format!("/issues/{id}.json?include=journals"))
            .await
            .pointer("/issue")
            .unwrap()
            .clone()
    }

    async fn find_by_subject(&self, subject: &str) -> Option<String> {
        let v = self
            .get(&format!(
                "/issues.json?project_id={}&status_id=*&subject=~{}",
                self.project,
                url::form_urlencoded::byte_serialize(subject.as_bytes()).collect::<String>()
            ))
            .await;
        v["issues"]
            .as_array()
            .unwrap()
            .first()
            .map(|i| i["id"].to_string())
    }
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn journals(issue: &Value) -> Vec<Value> {
    issue["journals"].as_array().cloned().unwrap_or_default()
}

fn notes_containing(issue: &Value, text: &str) -> Vec<Value> {
    journals(issue)
        .into_iter()
        .filter(|j| j["notes"].as_str().is_some_and(|n| n.contains(text)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_desk_and_redmine_relay_both_ways_under_policy() {
    let Some(rm) = redmine() else { return };
    let service_key = rm.service_key().await;
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("redmine.key");
    std::fs::write(&key_file, &service_key).unwrap();
    let conf = format!(
        r#"{PARTIES}{desk}
[endpoints.redmine]
party = "vendor"
kind = "rest"
service_account = "{SERVICE_LOGIN}"
[endpoints.redmine.rest]
profile = "redmine"
base_url = "{url}"
credentials = {{ file = "{key}" }}
project = "{project}"
poll_secs = 1
rate_limit_per_minute = 1200
timeout_secs = 10
# this installation has no status 99: a change to "waiting" cannot take
statuses = {{ outbound = {{ waiting = "99" }} }}

[[transfers]]
from = "desk"
to = "redmine"
"#,
        desk = desk.toml(dir.path(), "svc", ""),
        url = rm.url,
        key = key_file.display(),
        project = rm.project,
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // 1. Transfer: the desk's ticket becomes a Redmine issue.
    let subject = format!("Scale shows wrong weight {}", uuid::Uuid::new_v4().simple());
    let t = desk.desk.create_ticket(
        &subject,
        "Calibration lost after a power cut",
        &[("client_phone", "+1 555 0100")],
        "Dana",
    );
    let mut issue_id = None;
    for _ in 0..600 {
        issue_id = rm.find_by_subject(&subject).await;
        if issue_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let issue_id = issue_id.unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
    let issue = rm.issue(&issue_id).await;
    assert_eq!(issue["subject"], subject.as_str());
    let description = issue["description"].as_str().unwrap();
    assert!(description.contains("Calibration lost"), "{description}");
    assert!(!description.contains("555 0100"), "the phone stays home");
    assert_eq!(
        issue["author"]["name"], "Desk Bridge",
        "written as the service account"
    );
    eventually("the link knows the Redmine issue", 10, || async {
        let links = gw.get("/links").await.to_string();
        links.contains(&format!("\"{issue_id}\""))
    })
    .await;

    // 2. A comment for the partner crosses as a public note; an internal one does not.
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
    eventually("the partner comment is a Redmine note", 30, || async {
        notes_containing(&rm.issue(&issue_id).await, "spare load cell").len() == 1
    })
    .await;
    let note = notes_containing(&rm.issue(&issue_id).await, "spare load cell").remove(0);
    assert_eq!(note["private_notes"], false, "{note}");
    assert_eq!(note["user"]["name"], "Desk Bridge");
    assert!(note["notes"]
        .as_str()
        .unwrap()
        .contains("Dana (Service Co)"));

    // 3. A status change from the desk is applied and read back.
    desk.desk.set_status(&t, Status::InProgress, "Dana");
    eventually("Redmine shows In Progress", 30, || async {
        rm.issue(&issue_id).await["status"]["id"] == 2
    })
    .await;

    // 4. Redmine's own users write: a public note crosses (as an internal
    //    note marked with the vendor's name), a private note does not.
    rm.put_issue(
        &issue_id,
        json!({"notes": "Load cell ordered, on site Friday"}),
    )
    .await;
    rm.put_issue(
        &issue_id,
        json!({"notes": "Our cost: 40 EUR", "private_notes": true}),
    )
    .await;
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
        "the Redmine note did not reach the desk:\n{}\n{}",
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

    // 5. Redmine's status change reaches the desk.
    rm.put_issue(&issue_id, json!({"status_id": 3})).await;
    eventually("the desk shows Resolved", 30, || async {
        desk.desk.ticket(&t).unwrap().status == Status::Resolved
    })
    .await;

    // 6. Several polling rounds later: no echo either way, nothing private crossed.
    let journals_before = journals(&rm.issue(&issue_id).await).len();
    let comments_before = desk.desk.ticket(&t).unwrap().comments.len();
    let received_before = desk.desk.received();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let issue = rm.issue(&issue_id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(
        journals(&issue).len(),
        journals_before,
        "Redmine: {issue:#}"
    );
    assert_eq!(
        dt.comments.len(),
        comments_before,
        "{}",
        desk.desk.render(&t)
    );
    assert_eq!(desk.desk.received(), received_before);
    assert_eq!(notes_containing(&issue, "spare load cell").len(), 1);
    assert!(notes_containing(&issue, "Premium SLA").is_empty());
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

    // 7. A status Redmine ignores (no status 99) is a dead letter with the reason.
    desk.desk.set_status(&t, Status::Waiting, "Dana");
    eventually("a dead letter", 30, || async {
        !gw.get("/dead").await.as_array().unwrap().is_empty()
    })
    .await;
    let dead = gw.get("/dead").await;
    let error = dead[0]["error"].as_str().unwrap();
    assert_eq!(dead[0]["dest"], "redmine");
    assert!(
        error.contains("did not apply status 99 (for waiting)")
            && error.contains("still at status 3"),
        "{error}"
    );
    assert_eq!(rm.issue(&issue_id).await["status"]["id"], 3);
}
