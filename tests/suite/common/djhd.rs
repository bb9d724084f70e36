//! django-helpdesk as the live tests drive it: its superuser's API requests
//! and what they read back.
use super::rest::*;
use serde_json::{json, Value};

pub const DJHD_ENV_FILE: &str = "/run/deskbridge-test/django-helpdesk.env";

pub struct Djhd {
    /// Where helpdesk.urls is included (the API is under `/api/`).
    pub url: String,
    /// The service account deskbridge acts as: login, password, user id.
    pub user: String,
    pub password: String,
    pub user_id: String,
    /// The test queue's id.
    pub queue: String,
    /// django-helpdesk's own staff (the superuser), who writes as the vendor.
    pub admin_user: String,
    pub admin_password: String,
    pub http: reqwest::Client,
}

/// django-helpdesk's settings, or `None` when the test must be skipped (outside CI).
pub fn djhd() -> Option<Djhd> {
    let env = ServiceEnv::read(DJHD_ENV_FILE, "django-helpdesk", "django-helpdesk")?;
    Some(Djhd {
        url: env.get("DJHD_URL"),
        user: env.get("DJHD_SERVICE_USER"),
        password: env.get("DJHD_SERVICE_PASSWORD"),
        user_id: env.get("DJHD_SERVICE_USER_ID"),
        queue: env.get("DJHD_QUEUE"),
        admin_user: env.get("DJHD_USER"),
        admin_password: env.get("DJHD_PASSWORD"),
        http: reqwest::Client::new(),
    })
}

impl Djhd {
    /// The `[endpoints.django-helpdesk.rest]` lines beyond the common ones.
    pub fn extra(&self) -> String {
        format!(
            "username = \"{}\"\nsettings = {{ user_id = \"{}\" }}\n",
            self.user, self.user_id
        )
    }

    /// The endpoint "django-helpdesk" at `base_url` (the instance, or a
    /// proxy before it) with `extra` lines.
    pub fn endpoint<'a>(&'a self, base_url: &'a str, extra: &'a str) -> RestEndpoint<'a> {
        RestEndpoint {
            name: "django-helpdesk",
            service_account: &self.user,
            base_url,
            credentials: &self.password,
            credentials_file: "djhd.password",
            project: &self.queue,
            extra,
        }
    }

    /// A request as the superuser (not deskbridge's service account).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let req = self
            .http
            .request(method, format!("{}/api{path}", self.url))
            .basic_auth(&self.admin_user, Some(&self.admin_password));
        send(req, body).await
    }

    pub async fn ticket(&self, id: &str) -> Value {
        let (code, v) = self
            .call(reqwest::Method::GET, &format!("/tickets/{id}/"), None)
            .await;
        assert_eq!(code, 200, "ticket {id}: {v}");
        v
    }

    /// The ticket's follow-ups, oldest first (the first is its opening).
    pub async fn followups(&self, id: &str) -> Vec<Value> {
        self.ticket(id).await["followup_set"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A follow-up by the superuser: public or internal, with a status change or not.
    pub async fn follow_up(&self, id: &str, text: &str, public: bool, new_status: Option<u8>) {
        let mut body =
            json!({"ticket": id.parse::<u64>().unwrap(), "comment": text, "public": public});
        if let Some(s) = new_status {
            body["new_status"] = json!(s);
        }
        let (code, v) = self
            .call(reqwest::Method::POST, "/followups/", Some(body))
            .await;
        assert_eq!(code, 201, "follow-up on {id}: {v}");
    }

    /// Every file of the ticket's follow-ups, downloaded from its address.
    pub async fn files(&self, id: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for f in self.followups(id).await {
            for a in f["followupattachment_set"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let bytes = self
                    .http
                    .get(a["file"].as_str().unwrap())
                    .basic_auth(&self.admin_user, Some(&self.admin_password))
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                out.push((a["filename"].as_str().unwrap().to_string(), bytes.to_vec()));
            }
        }
        out
    }

    /// A public follow-up by the superuser with one file (multipart, as
    /// the web form sends it).
    pub async fn follow_up_with_file(&self, id: &str, text: &str, name: &str, bytes: &[u8]) {
        let b = format!("deskbridge-test-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        for (k, v) in [("ticket", id), ("comment", text), ("public", "true")] {
            body.extend(
                format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        body.extend(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"attachments\"; filename=\"{name}\"\r\nContent-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(bytes);
        body.extend(format!("\r\n--{b}--\r\n").as_bytes());
        let resp = self
            .http
            .post(format!("{}/api/followups/", self.url))
            .basic_auth(&self.admin_user, Some(&self.admin_password))
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        assert_eq!(code, 201, "{}", resp.text().await.unwrap());
    }

    pub async fn find_by_title(&self, title: &str) -> Option<String> {
        let (code, v) = self
            .call(reqwest::Method::GET, "/tickets/?page_size=1000", None)
            .await;
        assert_eq!(code, 200, "{v}");
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["title"] == title)
            .map(|t| t["id"].to_string())
    }
}

/// The follow-ups whose text contains `text`.
pub fn followups_containing(followups: &[Value], text: &str) -> Vec<Value> {
    followups
        .iter()
        .filter(|f| f["comment"].as_str().is_some_and(|c| c.contains(text)))
        .cloned()
        .collect()
}
