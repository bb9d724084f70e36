//! What the live REST tests (Redmine, RT) share: the service's env file,
//! a sample desk linked to it through a gateway, and the desk-side checks
//! that do not depend on the product.
use super::*;
use deskbridge::event::{Audience, Status};
use deskbridge::tools::sample_desk::DeskTicket;
use serde_json::Value;
use std::collections::HashMap;

/// The `KEY=value` lines of a test service's env file.
pub struct ServiceEnv {
    file: &'static str,
    vars: HashMap<String, String>,
}

impl ServiceEnv {
    /// Reads `file`, or `None` when the test must be skipped: outside CI a
    /// missing service is not a failure, in CI it is.
    pub fn read(file: &'static str, service: &str, product: &str) -> Option<ServiceEnv> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                if std::env::var_os("CI").is_some() {
                    panic!("{file}: {e}; scripts/test.sh starts {product} (bash scripts/services/{service}.sh start)");
                }
                eprintln!(
                    "\n!!!!! SKIPPED: no {file} ({e}). Run `bash scripts/services/{service}.sh start` (scripts/test.sh does) to test against {product}. !!!!!\n"
                );
                return None;
            }
        };
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Some(ServiceEnv { file, vars })
    }

    pub fn get(&self, k: &str) -> String {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("{} has no {k}", self.file))
            .to_string()
    }
}

/// Sends `req` with an optional JSON body; the status and the answer as
/// JSON (`Null` when it is not).
pub async fn send(mut req: reqwest::RequestBuilder, body: Option<Value>) -> (u16, Value) {
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `part`'s keys set in `into` (both JSON objects).
pub fn merge_into(into: &mut Value, part: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), part) {
        a.extend(b);
    }
}

/// The REST endpoint "vendor" side of the gateway config.
pub struct RestEndpoint<'a> {
    /// Both the endpoint's name and its profile.
    pub name: &'a str,
    pub service_account: &'a str,
    pub base_url: &'a str,
    /// Written to `credentials_file` in the gateway's dir.
    pub credentials: &'a str,
    pub credentials_file: &'a str,
    pub project: &'a str,
    /// Product-specific lines at the end of `[endpoints.NAME.rest]`.
    pub extra: &'a str,
}

impl RestEndpoint<'_> {
    /// Its `[endpoints.NAME]` tables; the credentials go to a file in `dir`.
    pub fn toml(&self, dir: &Path) -> String {
        let credentials_file = dir.join(self.credentials_file);
        std::fs::write(&credentials_file, self.credentials).unwrap();
        format!(
            r#"
[endpoints.{name}]
party = "vendor"
kind = "rest"
service_account = "{service_account}"
[endpoints.{name}.rest]
profile = "{name}"
base_url = "{url}"
credentials = {{ file = "{credentials}" }}
project = "{project}"
rate_limit_per_minute = 1200
{defaults}{extra}
"#,
            name = self.name,
            service_account = self.service_account,
            url = self.base_url,
            credentials = credentials_file.display(),
            project = self.project,
            extra = self.extra,
            // `extra` may set its own (TOML takes a key once).
            defaults = [("poll_secs", "1"), ("timeout_secs", "10")]
                .iter()
                .filter(|(k, _)| !self.extra.contains(k))
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>(),
        )
    }
}

/// A sample desk (party "svc") transferring to `ep` (party "vendor")
/// through a started gateway that passed `deskbridge check`.
pub async fn desk_and_gateway(ep: RestEndpoint<'_>) -> (Party, Gateway) {
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{desk}{endpoint}\n[[transfers]]\nfrom = \"desk\"\nto = \"{name}\"\n",
        // Its staff's names go with what they write (`author_name`).
        desk = desk.toml(
            dir.path(),
            "svc",
            "allowed_fields = [\"description\", \"priority\", \"due\", \"attachments\", \"author_name\"]"
        ),
        endpoint = ep.toml(dir.path()),
        name = ep.name,
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The operator's probe agrees: connected, the right account, readable.
    let probe = gw.cli(&["probe", "--endpoint", ep.name]);
    let said = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(
        probe.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    for want in [
        "credentials are accepted",
        "recognises its own writes",
        "reads changes",
        "internal notes with",
    ] {
        assert!(said.contains(want), "probe says no {want:?}:\n{said}");
    }
    assert!(
        !said.contains(ep.credentials),
        "the probe printed the credentials"
    );
    (desk, gw)
}

/// The product `ep`, as the service company (party "svc", its policy
/// `policy`), handing its tickets to a sample desk (party "vendor") when
/// `when` holds, through a started gateway that passed `deskbridge check`.
pub async fn product_to_desk(ep: RestEndpoint<'_>, policy: &str, when: &str) -> (Party, Gateway) {
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let product = ep
        .toml(dir.path())
        .replacen("party = \"vendor\"", "party = \"svc\"", 1);
    let conf = format!(
        "{PARTIES}{desk}{product}[endpoints.{name}.policy]\n{policy}\n\n[[transfers]]\nfrom = \"{name}\"\nto = \"desk\"\nwhen = {when}\n",
        desk = desk.toml(dir.path(), "vendor", ""),
        name = ep.name,
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    (desk, gw)
}

/// The poller of `endpoint` as /status shows it (rounds, taken,
/// last_round_reads).
pub async fn poller(gw: &Gateway, endpoint: &str) -> Value {
    gw.status().await["pollers"][endpoint].clone()
}

/// Waits until `n` more polling rounds of `endpoint` have ended: at least
/// `n - 1` of them began after this was called.
pub async fn rounds_pass(gw: &Gateway, endpoint: &str, n: u64) {
    let rounds = |p: Value| p["rounds"].as_u64().unwrap_or(0);
    let from = rounds(poller(gw, endpoint).await);
    eventually(&format!("{n} rounds of {endpoint}"), 60, || async {
        rounds(poller(gw, endpoint).await) >= from + n
    })
    .await;
}

/// `deskbridge probe` of an endpoint whose credentials are wrong: what it
/// prints, after checking it failed and kept the key to itself.
pub fn probe_with_wrong_credentials(ep: RestEndpoint<'_>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}\n[daemon]\ndata_dir = \"{data}\"\n{endpoint}",
        data = dir.path().join("data").display(),
        endpoint = ep.toml(dir.path()),
    );
    let config = dir.path().join("deskbridge.toml");
    std::fs::write(&config, conf).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "probe",
            "--endpoint",
            ep.name,
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains(ep.credentials),
        "the probe printed the credentials"
    );
    said
}

/// Whether `f` became true before `secs` passed, trying every `pause`.
pub async fn within<F, Fut>(secs: u64, pause: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
    }
    true
}

/// `f`'s first `Some`, trying up to `tries` times `pause` apart.
pub async fn first_some<T, F, Fut>(tries: u32, pause: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let mut found = None;
    for _ in 0..tries {
        found = f().await;
        if found.is_some() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    found
}

/// The file the desk's ticket carries when transferred with one.
pub const TICKET_FILE: (&str, &[u8]) = (
    "Фото весов.jpg",
    b"\xff\xd8\xff\xe0 not really a JPEG \x00\x01",
);

/// As `create_ticket`, with `TICKET_FILE`.
pub fn create_ticket_with_file(desk: &Party, subject: &str) -> String {
    desk.desk.create_ticket_with_files(
        subject,
        "Calibration lost after a power cut",
        &[("client_phone", "+1 555 0100")],
        "Dana",
        &[TICKET_FILE],
    )
}

/// The desk's ticket the live tests transfer (with a phone that must stay home).
pub fn create_ticket(desk: &Party, subject: &str) -> String {
    desk.desk.create_ticket(
        subject,
        "Calibration lost after a power cut",
        &[("client_phone", "+1 555 0100")],
        "Dana",
    )
}

/// Waits until the gateway's links name the product's ticket `id`.
pub async fn link_knows(gw: &Gateway, what: &str, id: &str) {
    eventually(what, 10, || async {
        let links = gw.get("/links").await.to_string();
        links.contains(&format!("\"{id}\""))
    })
    .await;
}

/// One comment for the partner (it must cross) and one internal (it must not).
pub fn comment_for_partner_and_internally(desk: &Party, t: &str) {
    desk.desk.comment(
        t,
        "Please bring a spare load cell",
        Audience::Partner,
        "Dana",
        &[],
    );
    desk.desk.comment(
        t,
        "Premium SLA, bill the client",
        Audience::Internal,
        "Dana",
        &[],
    );
}

/// The vendor's public "on site Friday" note reaches the desk as an
/// internal comment marked with the vendor's name.
pub async fn vendor_note_reaches_desk(
    desk: &Party,
    gw: &Gateway,
    t: &str,
    pause: Duration,
    what: &str,
) {
    let arrived = within(30, pause, || async {
        desk.desk
            .ticket(t)
            .unwrap()
            .comments
            .iter()
            .any(|c| c.body.contains("on site Friday"))
    })
    .await;
    assert!(
        arrived,
        "{what} did not reach the desk:\n{}\n{}",
        desk.desk.render(t),
        gw.log()
    );
    let dt = desk.desk.ticket(t).unwrap();
    let c = dt
        .comments
        .iter()
        .find(|c| c.body.contains("on site Friday"))
        .unwrap();
    assert_eq!(c.audience, Audience::Internal);
    assert!(c.author.contains("Vendor Co"), "{}", c.author);
}

pub async fn desk_shows_resolved(desk: &Party, t: &str) {
    eventually("the desk shows Resolved", 30, || async {
        desk.desk.ticket(t).unwrap().status == Status::Resolved
    })
    .await;
}

/// What the desk had before waiting several polling rounds, to see that
/// nothing echoed back.
pub struct DeskBefore {
    comments: usize,
    received: u64,
}

impl DeskBefore {
    /// Once the gateway is idle: a delivery retried after a timeout (the
    /// desk answers slowly under load) is not taken for an echo.
    pub async fn take(desk: &Party, gw: &Gateway, t: &str) -> DeskBefore {
        eventually("the gateway is idle", 60, || gw.idle()).await;
        DeskBefore {
            comments: desk.desk.ticket(t).unwrap().comments.len(),
            received: desk.desk.received(),
        }
    }

    /// `dt`: the desk's ticket after the rounds.
    pub fn assert_unchanged(&self, desk: &Party, t: &str, dt: &DeskTicket) {
        assert_eq!(dt.comments.len(), self.comments, "{}", desk.desk.render(t));
        assert_eq!(desk.desk.received(), self.received);
    }
}

/// The desk's ticket after the quiet rounds: the vendor's note once, its
/// private one never, and the status it set.
pub fn assert_desk_after_quiet_rounds(dt: &DeskTicket) {
    assert_eq!(
        dt.comments
            .iter()
            .filter(|c| c.body.contains("on site Friday"))
            .count(),
        1
    );
    assert!(!dt.comments.iter().any(|c| c.body.contains("40 EUR")));
    assert_eq!(dt.status, Status::Resolved);
}

/// Sets the desk's ticket to Waiting, which the product does not take: the
/// dead letter's error (its destination checked).
pub async fn waiting_dead_letter(desk: &Party, gw: &Gateway, t: &str, dest: &str) -> String {
    desk.desk.set_status(t, Status::Waiting, "Dana");
    eventually("a dead letter", 30, || async {
        !gw.get("/dead").await.as_array().unwrap().is_empty()
    })
    .await;
    let dead = gw.get("/dead").await;
    assert_eq!(dead[0]["dest"], dest);
    dead[0]["error"].as_str().unwrap().to_string()
}

/// The files of the desk's comment for the partner: a few hundred KB of
/// binary under a non-ASCII name, and a small text file.
pub fn partner_files() -> Vec<(String, Vec<u8>)> {
    // Deterministic bytes that no compression or text handling leaves alone.
    let mut x: u32 = 0x1234_5678;
    let big: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    vec![
        ("Prüfprotokoll весы №7.bin".to_string(), big),
        ("readings.txt".to_string(), b"12.5 kg\n12.7 kg\n".to_vec()),
    ]
}

/// The desk writes a comment for the partner with `partner_files`, and an
/// internal note with a file that must stay home.
pub fn comment_with_files(desk: &Party, t: &str) -> Vec<(String, Vec<u8>)> {
    let files = partner_files();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    desk.desk.comment(
        t,
        "Calibration report attached",
        Audience::Partner,
        "Dana",
        &refs,
    );
    desk.desk.comment(
        t,
        "Our margin sheet",
        Audience::Internal,
        "Dana",
        &[("margin-internal.xlsx", b"secret numbers")],
    );
    files
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// `got` (name, bytes as the product gives them back) holds each of
/// `want` once, byte for byte, and nothing of the internal note.
pub fn assert_files_landed(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)]) {
    for (name, bytes) in want {
        let same: Vec<_> = got.iter().filter(|(n, _)| n == name).collect();
        assert_eq!(same.len(), 1, "{name} once: {:?}", names(got));
        assert_eq!(
            sha256_hex(&same[0].1),
            sha256_hex(bytes),
            "{name}: the bytes read back differ ({} bytes, sent {})",
            same[0].1.len(),
            bytes.len()
        );
    }
    assert!(
        !got.iter().any(|(n, _)| n.contains("margin-internal")),
        "an internal note's file left: {:?}",
        names(got)
    );
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

/// A few hundred KB the vendor attaches.
pub fn vendor_file() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The vendor's comment `text` reaches the desk carrying exactly the file
/// `name` with `bytes`.
pub async fn vendor_file_reaches_desk(
    desk: &Party,
    gw: &Gateway,
    t: &str,
    text: &str,
    name: &str,
    bytes: &[u8],
) {
    let arrived = within(30, Duration::from_millis(100), || async {
        desk.desk
            .ticket(t)
            .unwrap()
            .comments
            .iter()
            .any(|c| c.body.contains(text))
    })
    .await;
    assert!(
        arrived,
        "the vendor's comment with a file did not reach the desk:\n{}\n{}",
        desk.desk.render(t),
        gw.log()
    );
    let dt = desk.desk.ticket(t).unwrap();
    let c: Vec<_> = dt
        .comments
        .iter()
        .filter(|c| c.body.contains(text))
        .collect();
    assert_eq!(c.len(), 1, "{}", desk.desk.render(t));
    assert_files_landed(&c[0].files, &[(name.to_string(), bytes.to_vec())]);
    assert_eq!(c[0].files.len(), 1, "{}", desk.desk.render(t));
}
