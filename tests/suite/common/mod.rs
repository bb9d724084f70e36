//! Test harness: the real deskbridge binary with a temporary data dir,
//! sample desks as partner systems on port 0.
#![allow(dead_code)]

pub mod djhd;
pub mod faulty;
pub mod mail;
pub mod redmine;
pub mod rest;
pub mod rt;

use deskbridge::connector::webhook::sign::{self, Secret};
use deskbridge::tools::sample_desk::SampleDesk;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_deskbridge");

/// A free loopback port (kept stable across daemon restarts).
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768 and up): a gateway started
    // again on its port after a SIGKILL must not find it taken by some
    // outgoing connection meanwhile. Each test process starts elsewhere.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + seed.wrapping_add(n.wrapping_mul(7)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN)
}

/// One partner system: a sample desk and the secrets between it and
/// deskbridge.
pub struct Party {
    pub endpoint: String,
    pub desk: SampleDesk,
    /// deskbridge signs deliveries to the desk with this.
    pub out_secret: String,
    /// the desk signs its webhooks to deskbridge with this.
    pub in_secret: String,
}

impl Party {
    pub async fn start(endpoint: &str) -> Party {
        let (_, out_secret) = Secret::generate();
        let (_, in_secret) = Secret::generate();
        let desk = SampleDesk::start(endpoint, &out_secret).await.unwrap();
        Party {
            endpoint: endpoint.into(),
            desk,
            out_secret,
            in_secret,
        }
    }

    /// The `[endpoints.X]` table; secrets go to files in `dir`.
    pub fn toml(&self, dir: &Path, party: &str, policy: &str) -> String {
        let in_file = dir.join(format!("{}.in.secret", self.endpoint));
        let out_file = dir.join(format!("{}.out.secret", self.endpoint));
        std::fs::write(&in_file, &self.in_secret).unwrap();
        std::fs::write(&out_file, &self.out_secret).unwrap();
        format!(
            r#"
[endpoints.{ep}]
party = "{party}"
kind = "webhook"
service_account = "deskbridge"
[endpoints.{ep}.webhook]
url = "{url}"
timeout_secs = 2
inbound_secrets = [{{ file = "{inf}" }}]
outbound_secret = {{ file = "{outf}" }}
[endpoints.{ep}.policy]
{policy}
"#,
            ep = self.endpoint,
            url = self.desk.url(),
            inf = in_file.display(),
            outf = out_file.display(),
        )
    }

    pub fn connect(&self, gw: &Gateway) {
        self.desk
            .connect(gw.hook_url(&self.endpoint), &self.in_secret);
    }
}

/// Parties "client", "svc" and "vendor" with their roles.
pub const PARTIES: &str = r#"
[parties.client]
name = "Client Co"
role = "client"
[parties.svc]
name = "Service Co"
role = "service_company"
[parties.vendor]
name = "Vendor Co"
role = "vendor"
"#;

pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    pub admin_port: u16,
    /// The open-file limit the daemon runs under (`ulimit -n`), if set.
    pub file_limit: Option<u64>,
    child: Option<Child>,
}

impl Gateway {
    /// Writes `[daemon]` plus `rest` and starts the daemon.
    pub fn start_with(dir: tempfile::TempDir, rest: &str) -> Gateway {
        Gateway::start_at(dir, free_port(), rest)
    }

    /// As `start_with`, on a port chosen beforehand (a partner gateway's
    /// config needs it).
    pub fn start_at(dir: tempfile::TempDir, port: u16, rest: &str) -> Gateway {
        let mut gw = Gateway::configure(dir, port, rest);
        gw.spawn();
        gw
    }

    /// As `start_with`, the daemon under an open-file limit of `n`.
    pub fn start_with_file_limit(dir: tempfile::TempDir, rest: &str, n: u64) -> Gateway {
        let mut gw = Gateway::configure(dir, free_port(), rest);
        gw.file_limit = Some(n);
        gw.spawn();
        gw
    }

    /// Writes the config; the daemon is not started.
    fn configure(dir: tempfile::TempDir, port: u16, rest: &str) -> Gateway {
        let admin_port = free_port();
        let config = dir.path().join("deskbridge.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n{rest}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        Gateway {
            dir,
            config,
            port,
            admin_port,
            file_limit: None,
            child: None,
        }
    }

    pub fn hook_url(&self, endpoint: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/{endpoint}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Starts the daemon and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let mut cmd = match self.file_limit {
            None => Command::new(BIN),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                c
            }
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&self.config)
            // DESKBRIDGE_TEST_LOG=debug shows each event in a failure's log.
            .env(
                "DESKBRIDGE_LOG",
                std::env::var("DESKBRIDGE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).is_ok()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("deskbridge exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "deskbridge did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// How the daemon exited, once it has (by itself).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let c = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let mut c = c;
        c.wait().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs a CLI subcommand against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    pub async fn status(&self) -> serde_json::Value {
        reqwest::get(self.admin_url("/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::get(self.admin_url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The admin listener's /metrics, as text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// True when nothing is queued or in flight anywhere.
    pub async fn idle(&self) -> bool {
        let s = self.status().await;
        s["destinations"]
            .as_object()
            .unwrap()
            .values()
            .all(|d| d["queued"] == 0 && d["in_flight"] == 0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it is true or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Signs and POSTs a raw body to a hook, as a partner would.
pub async fn post_signed(
    url: &str,
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> reqwest::Response {
    let s = Secret::parse(secret).unwrap();
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(sign::HEADER_ID, msg_id)
        .header(sign::HEADER_TIMESTAMP, timestamp.to_string())
        .header(
            sign::HEADER_SIGNATURE,
            sign::sign(&s, msg_id, timestamp, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
