//! Live: a sample desk (the service company) linked with a real Redmine 5
//! (the vendor) through the REST connector and its Redmine profile.
//! Redmine is started by scripts/test.sh (scripts/services/redmine.sh),
//! which writes /run/deskbridge-test/redmine.env.
mod common;

use common::rest::*;
use common::*;
use deskbridge::event::Status;
use serde_json::{json, Value};
use std::time::Duration;

const ENV_FILE: &str = "/run/deskbridge-test/redmine.env";
/// The Redmine user deskbridge acts as (made by this test when missing).
const SERVICE_LOGIN: &str = "deskbridge";
/// How often the test looks at Redmine or the desk while waiting.
const POLL: Duration = Duration::from_millis(50);

struct Redmine {
    url: String,
    key: String,
    project: String,
    http: reqwest::Client,
}

/// Redmine's settings, or `None` when the test must be skipped (outside CI).
fn redmine() -> Option<Redmine> {
    let env = ServiceEnv::read(ENV_FILE, "redmine", "Redmine")?;
    Some(Redmine {
        url: env.get("REDMINE_URL"),
        key: env.get("REDMINE_API_KEY"),
        project: env.get("REDMINE_PROJECT"),
        http: reqwest::Client::new(),
    })
}

impl Redmine {
    /// A request as the admin user (not deskbridge's service account).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", &self.key);
        send(req, body).await
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
    let (desk, gw) = desk_and_gateway(RestEndpoint {
        name: "redmine",
        service_account: SERVICE_LOGIN,
        base_url: &rm.url,
        credentials: &service_key,
        credentials_file: "redmine.key",
        project: &rm.project,
        extra: r#"# this installation has no status 99: a change to "waiting" cannot take
statuses = { outbound = { waiting = "99" } }
"#,
    })
    .await;

    // 1. Transfer: the desk's ticket becomes a Redmine issue.
    let subject = format!("Scale shows wrong weight {}", uuid::Uuid::new_v4().simple());
    let t = create_ticket(&desk, &subject);
    let issue_id = first_some(600, POLL, || rm.find_by_subject(&subject)).await;
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
    link_knows(&gw, "the link knows the Redmine issue", &issue_id).await;

    // 2. A comment for the partner crosses as a public note; an internal one does not.
    comment_for_partner_and_internally(&desk, &t);
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
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the Redmine note").await;

    // 5. Redmine's status change reaches the desk.
    rm.put_issue(&issue_id, json!({"status_id": 3})).await;
    desk_shows_resolved(&desk, &t).await;

    // 6. Several polling rounds later: no echo either way, nothing private crossed.
    let journals_before = journals(&rm.issue(&issue_id).await).len();
    let desk_before = DeskBefore::take(&desk, &t);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let issue = rm.issue(&issue_id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(
        journals(&issue).len(),
        journals_before,
        "Redmine: {issue:#}"
    );
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_eq!(notes_containing(&issue, "spare load cell").len(), 1);
    assert!(notes_containing(&issue, "Premium SLA").is_empty());
    assert_desk_after_quiet_rounds(&dt);
    assert!(gw.idle().await);

    // 7. A status Redmine ignores (no status 99) is a dead letter with the reason.
    let error = waiting_dead_letter(&desk, &gw, &t, "redmine").await;
    assert!(
        error.contains("did not apply status 99 (for waiting)")
            && error.contains("still at status 3"),
        "{error}"
    );
    assert_eq!(rm.issue(&issue_id).await["status"]["id"], 3);
}

#[test]
fn probe_names_refused_credentials() {
    let Some(rm) = redmine() else { return };
    let said = probe_with_wrong_credentials(RestEndpoint {
        name: "redmine",
        service_account: SERVICE_LOGIN,
        base_url: &rm.url,
        credentials: "0000000000000000000000000000000000000000",
        credentials_file: "redmine.key",
        project: &rm.project,
        extra: "",
    });
    assert!(said.contains("FAIL"), "{said}");
    assert!(said.contains("the credentials are refused"), "{said}");
    assert!(
        said.contains("endpoints.redmine.rest.credentials"),
        "{said}"
    );
}
