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
    Some(Djhd::from_env(&env))
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/services/django-helpdesk.sh"
);

/// A django-helpdesk of the test's own (`django-helpdesk.sh instance`):
/// the shared site's code and users on a database of its own, on a port
/// of its own; stopped when dropped. For what would disturb the shared
/// instance's other tests (thousands of tickets) or needs a set-up the
/// shared one may not have yet.
pub struct PrivateDjhd {
    pub dir: tempfile::TempDir,
    pub dh: Djhd,
    /// Its custom fields, by name.
    pub custom_fields: Vec<String>,
}

impl PrivateDjhd {
    /// Started, or `None` when the machine has no django-helpdesk (the
    /// test is skipped as `djhd()` skips it).
    pub fn start() -> Option<PrivateDjhd> {
        djhd()?;
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let out = std::process::Command::new("bash")
            .args([SCRIPT, "instance", "start"])
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "a private django-helpdesk did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.path().join("django-helpdesk.env");
        // ServiceEnv keeps its file's name for its messages.
        let file: &'static str = Box::leak(file.display().to_string().into_boxed_str());
        let env = ServiceEnv::read(file, "django-helpdesk", "django-helpdesk")
            .expect("the private instance's env file");
        let custom_fields = env
            .get("DJHD_CUSTOM_FIELDS")
            .split(',')
            .map(str::to_string)
            .collect();
        Some(PrivateDjhd {
            dh: Djhd::from_env(&env),
            dir,
            custom_fields,
        })
    }

    /// `n` tickets inserted straight into its database in one transaction
    /// (one an hour, the newest an hour ago, each with its opening
    /// follow-up): their first and last ids and the seconds it took.
    pub fn seed(&self, n: u64) -> (u64, u64, f64) {
        let out = std::process::Command::new("bash")
            .args([SCRIPT, "instance", "seed"])
            .arg(self.dir.path())
            .arg(n.to_string())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "seeding failed:\n{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            said.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k} in {said}"))
                .to_string()
        };
        (
            get("FIRST").parse().unwrap(),
            get("LAST").parse().unwrap(),
            get("SECONDS").parse().unwrap(),
        )
    }
}

impl Drop for PrivateDjhd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args([SCRIPT, "instance", "stop"])
            .arg(self.dir.path())
            .output();
    }
}

impl Djhd {
    fn from_env(env: &ServiceEnv) -> Djhd {
        Djhd {
            url: env.get("DJHD_URL"),
            user: env.get("DJHD_SERVICE_USER"),
            password: env.get("DJHD_SERVICE_PASSWORD"),
            user_id: env.get("DJHD_SERVICE_USER_ID"),
            queue: env.get("DJHD_QUEUE"),
            admin_user: env.get("DJHD_USER"),
            admin_password: env.get("DJHD_PASSWORD"),
            http: reqwest::Client::new(),
        }
    }

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

    /// A ticket among the newest 1000 to 2000 by its title: the list runs
    /// by id, oldest first, so its last page holds the newest tickets (a
    /// desk past a thousand tickets never shows a new one on its first
    /// page); the page before it too, when the last one is short.
    pub async fn find_by_title(&self, title: &str) -> Option<String> {
        const SIZE: u64 = 1000;
        let (code, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/tickets/?page=last&page_size={SIZE}"),
                None,
            )
            .await;
        assert_eq!(code, 200, "{v}");
        let find = |v: &Value| {
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["title"] == title)
                .map(|t| t["id"].to_string())
        };
        if let Some(id) = find(&v) {
            return Some(id);
        }
        let last = v["count"].as_u64().unwrap().div_ceil(SIZE);
        if last < 2 {
            return None;
        }
        let (code, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/tickets/?page={}&page_size={SIZE}", last - 1),
                None,
            )
            .await;
        assert_eq!(code, 200, "{v}");
        find(&v)
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
