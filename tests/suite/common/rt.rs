//! Request Tracker as the live tests drive it: root's REST2 requests and
//! what they read back.
use super::rest::*;
use serde_json::{json, Value};

pub const RT_ENV_FILE: &str = "/run/deskbridge-test/rt.env";

pub struct Rt {
    /// REST2 base.
    pub rest: String,
    /// The service account deskbridge acts as, and its token.
    pub user: String,
    pub token: String,
    pub queue: String,
    /// RT's own user (root), who writes as the vendor's staff.
    pub root_user: String,
    pub root_password: String,
    /// The custom fields the service script made: site, equipment,
    /// serial_number, partner_* and upstream_* → their ids.
    pub cf: std::collections::BTreeMap<String, String>,
    pub http: reqwest::Client,
}

/// RT's settings, or `None` when the test must be skipped (outside CI).
pub fn rt() -> Option<Rt> {
    let env = ServiceEnv::read(RT_ENV_FILE, "rt", "Request Tracker")?;
    Some(Rt {
        rest: env.get("RT_REST_URL"),
        user: env.get("RT_USER"),
        token: env.get("RT_TOKEN"),
        queue: env.get("RT_QUEUE"),
        root_user: env.get("RT_ROOT_USER"),
        root_password: env.get("RT_ROOT_PASSWORD"),
        cf: [
            ("site", "RT_CF_SITE"),
            ("equipment", "RT_CF_EQUIPMENT"),
            ("serial_number", "RT_CF_SERIAL"),
            ("partner_ticket", "RT_CF_PARTNER_TICKET"),
            ("partner_status", "RT_CF_PARTNER_STATUS"),
            ("upstream_ticket", "RT_CF_UPSTREAM_TICKET"),
            ("upstream_status", "RT_CF_UPSTREAM_STATUS"),
        ]
        .map(|(f, k)| (f.to_string(), env.get(k)))
        .into(),
        http: reqwest::Client::new(),
    })
}

impl Rt {
    /// A request as root (not deskbridge's service account).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let req = self
            .http
            .request(method, format!("{}{path}", self.rest))
            .basic_auth(&self.root_user, Some(&self.root_password));
        send(req, body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (code, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    pub async fn ticket(&self, id: &str) -> Value {
        self.get(&format!("/ticket/{id}")).await
    }

    /// A correspond (public) or comment (internal) by root.
    pub async fn write(&self, id: &str, what: &str, text: &str) {
        let (code, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/ticket/{id}/{what}"),
                Some(json!({"Content": text, "ContentType": "text/plain"})),
            )
            .await;
        assert!(code == 201 || code == 200, "{what} on {id}: {code} {v}");
    }

    pub async fn set_status(&self, id: &str, status: &str) {
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
    pub async fn history(&self, id: &str) -> Vec<Value> {
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

    pub async fn find_by_subject(&self, subject: &str) -> Option<String> {
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

pub fn texts_containing(history: &[Value], kind: &str, text: &str) -> Vec<Value> {
    history
        .iter()
        .filter(|t| t["Type"] == kind && t["Content"].as_str().is_some_and(|c| c.contains(text)))
        .cloned()
        .collect()
}

impl Rt {
    /// The ticket's files (attachments with a file name), each read
    /// through REST2's `/attachment/{id}` (base64 content).
    pub async fn files(&self, id: &str) -> Vec<(String, Vec<u8>)> {
        use base64::Engine as _;
        let list = self
            .get(&format!(
                "/ticket/{id}/attachments?fields=Filename&per_page=100"
            ))
            .await;
        let mut out = Vec::new();
        for a in list["items"].as_array().unwrap() {
            let name = a["Filename"].as_str().unwrap_or_default();
            if name.is_empty() {
                continue;
            }
            let full = self
                .get(&format!("/attachment/{}", a["id"].as_str().unwrap()))
                .await;
            let b64: String = full["Content"]
                .as_str()
                .unwrap()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            out.push((name.to_string(), bytes));
        }
        out
    }
}

impl Rt {
    /// A correspond or comment by root with a file, as multipart (RT's
    /// JSON attachments garble non-ASCII file names).
    pub async fn write_with_file(
        &self,
        id: &str,
        what: &str,
        text: &str,
        name: &str,
        bytes: &[u8],
    ) {
        let boundary = "rt-test-boundary-7d1c";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"JSON\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"Attachments\"; filename=\"{name}\"\r\nContent-Type: application/pdf\r\n\r\n",
            json!({"Content": text, "ContentType": "text/plain"})
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .http
            .post(format!("{}/ticket/{id}/{what}", self.rest))
            .basic_auth(&self.root_user, Some(&self.root_password))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let v = resp.text().await.unwrap();
        assert!(
            code == 201 || code == 200,
            "{what} with a file on {id}: {code} {v}"
        );
    }
}

impl Rt {
    /// A queue of the test's own (made through REST2 as root), so that
    /// parallel tests' tickets are not in what it polls: this `Rt` with
    /// `queue` set to it. Custom fields are not applied to it (REST2 cannot).
    pub async fn own_queue(&self, what: &str) -> Rt {
        let name = format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (code, v) = self
            .call(
                reqwest::Method::POST,
                "/queue",
                Some(json!({"Name": name, "Description": "deskbridge live test, its own"})),
            )
            .await;
        assert_eq!(code, 201, "creating queue {name}: {v}");
        Rt {
            rest: self.rest.clone(),
            user: self.user.clone(),
            token: self.token.clone(),
            queue: name,
            root_user: self.root_user.clone(),
            root_password: self.root_password.clone(),
            cf: self.cf.clone(),
            http: self.http.clone(),
        }
    }

    /// Opens a ticket in the queue as root; its id.
    pub async fn create(&self, subject: &str, text: &str, more: Value) -> String {
        let mut body = json!({"Queue": self.queue, "Subject": subject,
            "Content": text, "ContentType": "text/plain"});
        merge_into(&mut body, more);
        let (code, v) = self
            .call(reqwest::Method::POST, "/ticket", Some(body))
            .await;
        assert_eq!(code, 201, "{v}");
        v["id"]
            .as_str()
            .map_or_else(|| v["id"].to_string(), String::from)
    }

    /// Sets custom fields (canonical name → value) as RT's staff would.
    pub async fn set_cfs(&self, id: &str, values: &[(&str, &str)]) {
        let cfs: serde_json::Map<String, Value> = values
            .iter()
            .map(|(f, v)| (self.cf[*f].clone(), json!(v)))
            .collect();
        let (code, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("/ticket/{id}"),
                Some(json!({ "CustomFields": cfs })),
            )
            .await;
        assert_eq!(code, 200, "custom fields of {id}: {v}");
        assert!(!v.to_string().contains("could not"), "{v}");
    }
}
