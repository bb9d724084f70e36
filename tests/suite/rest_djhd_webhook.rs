//! Live: django-helpdesk 2.6's own webhooks wake deskbridge's poll. The
//! gateway polls once an hour here, so everything that reaches the desk
//! within seconds came because django-helpdesk posted its webhook (new
//! follow-up, status change) to /hooks/django-helpdesk?token=…, and the
//! gateway then read the change through the API. Webhooks with a wrong or
//! missing token are refused and change nothing.

use crate::common::djhd::*;
use crate::common::eventually;
use crate::common::rest::*;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(100);

/// Points django-helpdesk's webhooks at a URL for as long as it lives.
struct Webhooks(std::path::PathBuf);

impl Webhooks {
    fn point_at(file: &str, url: &str) -> Webhooks {
        std::fs::write(file, format!("{url}\n")).unwrap();
        Webhooks(file.into())
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn django_helpdesk_webhooks_wake_the_poll() {
    let Some(dh) = djhd() else { return };
    let hooks_file = ServiceEnv::read(DJHD_ENV_FILE, "django-helpdesk", "django-helpdesk")
        .unwrap()
        .get("DJHD_WEBHOOKS_FILE");
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let secret_file = secret_dir.path().join("djhd-webhook.secret");
    std::fs::write(&secret_file, &secret).unwrap();
    let extra = format!(
        "{}poll_secs = 3600\nwebhook_secret = {{ file = \"{}\" }}\n",
        dh.extra(),
        secret_file.display()
    );
    let (desk, gw) = desk_and_gateway(dh.endpoint(&dh.url, &extra)).await;
    let hook = gw.hook_url("django-helpdesk");
    let http = reqwest::Client::new();

    // The probe tells the operator the product's webhooks are taken.
    let probe = gw.cli(&["probe", "--endpoint", "django-helpdesk"]);
    let said = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(said.contains("/hooks/django-helpdesk"), "{said}");
    assert!(!said.contains(&secret), "the probe printed the secret");

    // 1. Refused: no token, a wrong one, a body that is not JSON.
    let (code, v) = send(
        http.post(&hook),
        Some(serde_json::json!({"ticket": {"id": 1}})),
    )
    .await;
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("?token="), "{v}");
    let (code, v) = send(
        http.post(format!("{hook}?token=not-the-secret")),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(code, 401, "{v}");
    assert!(!v.to_string().contains(&secret));
    // Authentic, whatever the body: it wakes the poll (202).
    let resp = http
        .post(format!("{hook}?token={secret}"))
        .body("<html>a body the profile cannot read</html>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // 2. The desk's ticket becomes a django-helpdesk ticket (the relay,
    //    not the poll, writes it).
    let _hooks = Webhooks::point_at(&hooks_file, &format!("{hook}?token={secret}"));
    let subject = format!("Webhook scale {}", uuid::Uuid::new_v4().simple());
    let t = create_ticket(&desk, &subject);
    let id = first_some(300, POLL, || dh.find_by_title(&subject))
        .await
        .unwrap_or_else(|| panic!("no django-helpdesk ticket:\n{}", gw.log()));
    link_knows(&gw, "the link knows the ticket", &id).await;

    // 3. django-helpdesk's staff reply: its webhook wakes the poll, and
    //    the reply reaches the desk long before the hourly poll.
    let webhooks = || async {
        gw.status().await["pollers"]["django-helpdesk"]["webhooks"]
            .as_u64()
            .unwrap_or_default()
    };
    let before = webhooks().await;
    dh.follow_up(&id, "Load cell ordered, on site Friday", true, None)
        .await;
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the reply (by webhook)").await;
    // Taken as the product's webhook (each one's line is at debug level;
    // the status counts them).
    assert!(webhooks().await > before, "{}", gw.log());

    // 4. A status change, by webhook too.
    dh.follow_up(&id, "", false, Some(3)).await;
    desk_shows_resolved(&desk, &t).await;

    // 5. An internal follow-up also wakes the poll, and stays home; no
    //    echo of what deskbridge wrote (its writes wake the poll as well).
    let before_note = webhooks().await;
    dh.follow_up(&id, "Our cost: 40 EUR", false, None).await;
    eventually(
        "the internal follow-up's webhook woke the poll",
        10,
        || async { webhooks().await > before_note },
    )
    .await;
    let desk_before = DeskBefore::take(&desk, &gw, &t).await;
    let before = dh.followups(&id).await.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dt = desk.desk.ticket(&t).unwrap();
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_desk_after_quiet_rounds(&dt);
    assert_eq!(dh.followups(&id).await.len(), before);
    assert!(!gw.log().contains(&secret), "the secret is in the log");
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
    // What the operator sees: the webhooks taken and refused, the poll fine.
    let p = &status["pollers"]["django-helpdesk"];
    assert!(p["webhooks"].as_u64().unwrap() >= 4, "{status}");
    assert_eq!(p["webhooks_refused"], 2, "{status}");
    assert!(p["failing"].is_null(), "{status}");
    let said = gw.cli(&["status"]);
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(
        said.contains("django-helpdesk polling:") && said.contains("2 refused"),
        "{said}"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .contains("deskbridge_product_webhooks_refused_total{endpoint=\"django-helpdesk\"} 2"),
        "{metrics}"
    );
}
