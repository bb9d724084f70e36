//! Redmine as the live tests drive it: the admin's REST requests and what
//! they read back.
use super::rest::*;
use serde_json::{json, Value};

pub const REDMINE_ENV_FILE: &str = "/run/deskbridge-test/redmine.env";
/// The Redmine user deskbridge acts as (made by this test when missing).
pub const REDMINE_SERVICE_LOGIN: &str = "deskbridge";

pub struct Redmine {
    pub url: String,
    pub key: String,
    pub project: String,
    /// The custom fields the service script made: site, equipment,
    /// serial_number, partner_* and upstream_* → their ids.
    pub cf: std::collections::BTreeMap<String, String>,
    pub http: reqwest::Client,
}

/// Redmine's settings, or `None` when the test must be skipped (outside CI).
pub fn redmine() -> Option<Redmine> {
    let env = ServiceEnv::read(REDMINE_ENV_FILE, "redmine", "Redmine")?;
    Some(Redmine {
        url: env.get("REDMINE_URL"),
        key: env.get("REDMINE_API_KEY"),
        project: env.get("REDMINE_PROJECT"),
        cf: [
            ("site", "REDMINE_CF_SITE"),
            ("equipment", "REDMINE_CF_EQUIPMENT"),
            ("serial_number", "REDMINE_CF_SERIAL"),
            ("partner_ticket", "REDMINE_CF_PARTNER_TICKET"),
            ("partner_status", "REDMINE_CF_PARTNER_STATUS"),
            ("upstream_ticket", "REDMINE_CF_UPSTREAM_TICKET"),
            ("upstream_status", "REDMINE_CF_UPSTREAM_STATUS"),
        ]
        .map(|(f, k)| (f.to_string(), env.get(k)))
        .into(),
        http: reqwest::Client::new(),
    })
}

impl Redmine {
    /// A request as the admin user (not deskbridge's service account).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", &self.key);
        send(req, body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (code, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    pub async fn put_issue(&self, id: &str, issue: Value) {
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
    pub async fn service_key(&self) -> String {
        let users = self
            .get(&format!("/users.json?name={REDMINE_SERVICE_LOGIN}&status="))
            .await;
        let existing = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == REDMINE_SERVICE_LOGIN)
            .map(|u| u["id"].as_u64().unwrap());
        let id = match existing {
            Some(id) => id,
            None => {
                let (code, v) = self
                    .call(
                        reqwest::Method::POST,
                        "/users.json",
                        Some(json!({"user": {
                            "login": REDMINE_SERVICE_LOGIN, "firstname": "Desk", "lastname": "Bridge",
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

    pub async fn issue(&self, id: &str) -> Value {
        self.get(&format!("/issues/{id}.json?include=journals"))
            .await
            .pointer("/issue")
            .unwrap()
            .clone()
    }

    pub async fn find_by_subject(&self, subject: &str) -> Option<String> {
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

pub fn journals(issue: &Value) -> Vec<Value> {
    issue["journals"].as_array().cloned().unwrap_or_default()
}

pub fn notes_containing(issue: &Value, text: &str) -> Vec<Value> {
    journals(issue)
        .into_iter()
        .filter(|j| j["notes"].as_str().is_some_and(|n| n.contains(text)))
        .collect()
}

impl Redmine {
    /// The issue's files, each downloaded through Redmine's API.
    pub async fn files(&self, id: &str) -> Vec<(String, Vec<u8>)> {
        let issue = self
            .get(&format!("/issues/{id}.json?include=attachments"))
            .await;
        let mut out = Vec::new();
        for a in issue["issue"]["attachments"].as_array().unwrap() {
            let resp = self
                .http
                .get(a["content_url"].as_str().unwrap())
                .header("X-Redmine-API-Key", &self.key)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{a}: {}", resp.status());
            let bytes = resp.bytes().await.unwrap().to_vec();
            out.push((a["filename"].as_str().unwrap().to_string(), bytes));
        }
        out
    }
}

impl Redmine {
    /// A public note by the admin with a file, uploaded as Redmine's own
    /// users do (POST /uploads.json, then the token in the update).
    pub async fn note_with_file(&self, id: &str, text: &str, name: &str, bytes: &[u8]) {
        let resp = self
            .http
            .post(format!(
                "{}/uploads.json?filename={}",
                self.url,
                url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
            ))
            .header("X-Redmine-API-Key", &self.key)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "upload {name}");
        let v: Value = resp.json().await.unwrap();
        let token = v["upload"]["token"].as_str().unwrap().to_string();
        self.put_issue(
            id,
            json!({"notes": text, "uploads": [{"token": token, "filename": name,
                "content_type": "application/octet-stream"}]}),
        )
        .await;
    }
}

impl Redmine {
    /// A project of the test's own (made through the API as admin, every
    /// tracker, the service account a manager in it), so that parallel
    /// tests' issues are not in what it polls: this `Redmine` with
    /// `project` set to it. The custom fields are for all projects.
    pub async fn own_project(&self, what: &str) -> Redmine {
        let ident = format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let trackers: Vec<Value> = self.get("/trackers.json").await["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].clone())
            .collect();
        let (code, v) = self
            .call(
                reqwest::Method::POST,
                "/projects.json",
                Some(
                    json!({"project": {"name": ident, "identifier": ident, "is_public": false,
                    "enabled_module_names": ["issue_tracking"], "tracker_ids": trackers}}),
                ),
            )
            .await;
        assert_eq!(code, 201, "creating project {ident}: {v}");
        let own = Redmine {
            url: self.url.clone(),
            key: self.key.clone(),
            project: ident,
            cf: self.cf.clone(),
            http: self.http.clone(),
        };
        // The service account joins it.
        own.service_key().await;
        own
    }

    /// Opens an issue in the project as the admin; its id.
    pub async fn create(&self, subject: &str, text: &str, more: Value) -> String {
        let mut issue = json!({"project_id": self.project, "subject": subject,
            "description": text});
        merge_into(&mut issue, more);
        let (code, v) = self
            .call(
                reqwest::Method::POST,
                "/issues.json",
                Some(json!({ "issue": issue })),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        v["issue"]["id"].to_string()
    }
}
