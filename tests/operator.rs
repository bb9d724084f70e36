//! What an operator sees and does: links, status, transfer by command,
//! a clean stop on SIGTERM, and the commands working with the daemon down.
mod common;

use common::*;
use deskbridge::event::Audience;

#[tokio::test(flavor = "multi_thread")]
async fn transfer_by_command_links_and_status_and_sigterm() {
    let svc = Party::start("svc").await;
    let vendor = Party::start("vendor").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}",
        svc.toml(dir.path(), "svc", ""),
        vendor.toml(dir.path(), "vendor", "")
    );
    let mut gw = Gateway::start_with(dir, &conf);
    svc.connect(&gw);
    vendor.connect(&gw);

    let t = svc
        .desk
        .create_ticket("Router down", "Branch 7 offline", &[], "Ann");
    eventually("svc ticket accepted", 10, || async {
        svc.desk.unsent() == 0
    })
    .await;
    // No rule: nothing is transferred by itself.
    assert!(gw.get("/links").await.as_array().unwrap().is_empty());

    let out = gw.cli(&["transfer", "--from", &format!("svc:{t}"), "--to", "vendor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let link_id = printed.split_whitespace().next().unwrap().to_string();
    eventually("vendor ticket created", 10, || async {
        vendor.desk.tickets().len() == 1
    })
    .await;
    let vt = vendor.desk.tickets().remove(0);
    assert_eq!(
        vt.partner,
        Some(("Service Co".to_string(), Some(t.clone())))
    );

    // Transferring twice is refused and changes nothing.
    let again = gw.cli(&["transfer", "--from", &format!("svc:{t}"), "--to", "vendor"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already linked"));
    // An unknown ticket is named.
    let unknown = gw.cli(&["transfer", "--from", "svc:999", "--to", "vendor"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has not seen ticket 999"));

    vendor
        .desk
        .comment(&vt.id, "On site tomorrow 9:00", Audience::Public, "Bo", &[]);
    eventually("svc gets the reply", 10, || async {
        svc.desk
            .ticket(&t)
            .unwrap()
            .comments
            .iter()
            .any(|c| c.body.contains("On site"))
    })
    .await;
    eventually("idle", 10, || async { gw.idle().await }).await;

    let links = String::from_utf8_lossy(&gw.cli(&["links"]).stdout).to_string();
    assert!(
        links.contains(&link_id) && links.contains(&format!("ticket {}", vt.id)),
        "{links}"
    );
    let show = gw.cli(&["links", "show", &link_id, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["upstream"]["ticket"], t.as_str());
    assert_eq!(v["downstream"]["ticket"], vt.id.as_str());
    assert_eq!(v["downstream"]["party"], "Vendor Co");
    let status = gw.cli(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&status.stderr)));
    assert_eq!(s["running"], true);
    assert_eq!(s["links"], 1);
    assert!(
        s["destinations"]["svc"]["delivered"].as_u64().unwrap() >= 1,
        "{s}"
    );

    let metrics = gw.metrics().await;
    assert!(metrics.contains("deskbridge_links 1"), "{metrics}");
    assert!(
        metrics.contains("deskbridge_queued{destination=\"vendor\"} 0"),
        "{metrics}"
    );

    // SIGTERM: a clean exit, and the commands still work from the data dir.
    let exit = gw.terminate();
    assert!(exit.success(), "{exit:?}\n{}", gw.log());
    let status = gw.cli(&["status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["running"], false);
    assert_eq!(s["links"], 1);
    let dead = gw.cli(&["dead"]);
    assert_eq!(
        String::from_utf8_lossy(&dead.stdout).trim(),
        "no dead letters"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_says_what_works_and_what_to_fix() {
    let svc = Party::start("svc").await;
    let vendor = Party::start("vendor").await;
    let dir = tempfile::tempdir().unwrap();
    // "gone" points at a port nobody listens on.
    let gone = vendor
        .toml(dir.path(), "vendor", "")
        .replace("[endpoints.vendor", "[endpoints.gone")
        .replace(
            &vendor.desk.url(),
            &format!("http://127.0.0.1:{}/in", free_port()),
        );
    let conf = format!(
        "{PARTIES}{}{}{gone}",
        svc.toml(dir.path(), "svc", ""),
        vendor.toml(dir.path(), "vendor", "share_status = false")
    );
    let gw = Gateway::start_with(dir, &conf);

    let out = gw.cli(&["probe", "--endpoint", "vendor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("signed webhooks"), "{text}");
    assert!(
        text.contains("/hooks/vendor, signed with 1 secret"),
        "{text}"
    );
    assert!(text.contains("answers (HTTP 405"), "{text}");
    assert!(text.contains("its status changes stay here"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(!text.contains(&vendor.in_secret) && !text.contains(&vendor.out_secret));

    let out = gw.cli(&["probe", "--endpoint", "gone"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL") && text.contains("cannot connect"),
        "{text}"
    );
    assert!(text.contains("check endpoints.gone.webhook.url"), "{text}");

    let out = gw.cli(&["probe", "--endpoint", "nosuch"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no endpoint \"nosuch\"") && err.contains("svc"),
        "{err}"
    );
}
