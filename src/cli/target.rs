//! Where the operator commands act: the running daemon's admin API, or
//! the data dir itself when no daemon runs.

use anyhow::{bail, Context, Result};
use deskbridge::config::Config;
use deskbridge::ops::Ops;
use std::sync::Arc;

/// Talks to the running daemon's admin API, or opens the data dir itself
/// when no daemon runs.
pub enum Target {
    Remote(reqwest::Client, String),
    Local(Box<Ops>),
}

pub async fn target(config: Config) -> Result<Target> {
    let base = format!("http://{}", config.daemon.admin_listen);
    let client = reqwest::Client::new();
    match client.get(format!("{base}/status")).send().await {
        Ok(_) => Ok(Target::Remote(client, base)),
        Err(e) if e.is_connect() => {
            let ops = deskbridge::daemon::open(Arc::new(config), Default::default(), None)
                .context("no daemon answers on admin_listen, and the data dir cannot be opened")?;
            Ok(Target::Local(Box::new(ops)))
        }
        Err(e) => Err(e).context("admin API"),
    }
}

impl Target {
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let Target::Remote(c, base) = self else {
            unreachable!("remote only")
        };
        decode(c.get(format!("{base}{path}")).send().await?).await
    }

    pub async fn post<T: serde::de::DeserializeOwned, B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let Target::Remote(c, base) = self else {
            unreachable!("remote only")
        };
        decode(c.post(format!("{base}{path}")).json(body).send().await?).await
    }
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T> {
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        bail!("{msg}");
    }
    Ok(serde_json::from_str(&text)?)
}
