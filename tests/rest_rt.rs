//! Live: a sample desk (the service company) linked with a real Request
//! Tracker 5 (the vendor) through the REST connector and its RT profile.
//! RT is started by scripts/test.sh (scripts/services/rt.sh), which writes
//! /run/deskbridge-test/rt.env.
mod common;

use common::rest::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const ENV_FILE: &str = "/run/deskbridge-test/rt.env";
/// How often the test looks at RT or the desk while waiting.
const POLL: Duration = Duration::from_millis(100);

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
    let env = ServiceEnv::read(ENV_FILE, "rt", "Request Tracker")?;
    Some(Rt {
        rest: env.get("RT_REST_URL"),
        user: env.get("RT_USER"),
        token: env.get("RT_TOKEN"),
        queue: env.get("RT_QUEUE"),
        root_user: env.get("RT_ROOT_USER"),
        root_password: env.get("RT_ROOT_PASSWORD"),
        http: reqwest::Client::new(),
    })
}

impl Rt {
    /// A request as root (not deskbridge's service account).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = self
            .http
            .request(method, format!("{}{path}", self.rest))
            .basic_auth(&self.root_user, Some(&self.root_password));
        send(req, body).await
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

#[tokio::test(flavor = "multi_thread")]
async fn sample_desk_and_rt_relay_both_ways_under_policy() {
    let Some(rt) = rt() else { return };
    let (desk, gw) = desk_and_gateway(RestEndpoint {
        name: "rt",
        service_account: &rt.user,
        base_url: &rt.rest,
        credentials: &rt.token,
        credentials_file: "rt.token",
        project: &rt.queue,
        extra: r#"# RT's default lifecycle has no status "nosuch": a change to "waiting" cannot take
statuses = { outbound = { waiting = "nosuch" } }
"#,
    })
    .await;

    // 1. Transfer: the desk's ticket becomes an RT ticket.
    let subject = format!(
        "Scale shows 'wrong' weight {}",
        uuid::Uuid::new_v4().simple()
    );
    let t = create_ticket(&desk, &subject);
    let ticket_id = first_some(300, POLL, || rt.find_by_subject(&subject)).await;
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
    link_knows(&gw, "the link knows the RT ticket", &id).await;

    // 2. A comment for the partner is a correspond; an internal one does not cross.
    comment_for_partner_and_internally(&desk, &t);
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
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the RT correspond").await;

    // 4. RT's status change reaches the desk.
    rt.set_status(&id, "resolved").await;
    desk_shows_resolved(&desk, &t).await;

    // 5. Several polling rounds later: no echo either way, nothing private crossed.
    let history_before = rt.history(&id).await.len();
    let desk_before = DeskBefore::take(&desk, &t);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let history = rt.history(&id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(history.len(), history_before, "RT: {history:#?}");
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_eq!(
        texts_containing(&history, "Correspond", "spare load cell").len(),
        1
    );
    assert!(history
        .iter()
        .all(|h| !h["Content"].as_str().unwrap_or("").contains("Premium SLA")));
    assert_desk_after_quiet_rounds(&dt);
    assert!(gw.idle().await);

    // 6. A status RT refuses (answering 200) is a dead letter with the reason.
    let error = waiting_dead_letter(&desk, &gw, &t, "rt").await;
    assert!(
        error.contains("did not apply status nosuch (for waiting)")
            && error.contains("still at status resolved"),
        "{error}"
    );
    assert_eq!(rt.ticket(&id).await["Status"], "resolved");
}

#[test]
fn probe_names_refused_credentials() {
    let Some(rt) = rt() else { return };
    let said = probe_with_wrong_credentials(RestEndpoint {
        name: "rt",
        service_account: &rt.user,
        base_url: &rt.rest,
        credentials: "1-14-0123456789abcdef0123456789abcdef",
        credentials_file: "rt.token",
        project: &rt.queue,
        extra: "",
    });
    assert!(said.contains("FAIL"), "{said}");
    assert!(said.contains("the credentials are refused"), "{said}");
    assert!(said.contains("endpoints.rt.rest.credentials"), "{said}");
}
