//! What an operator sees and does: links, status, transfer by command,
//! a clean stop on SIGTERM, and the commands working with the daemon down.

use crate::common::*;
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

/// An endpoint taken out of the configuration while messages wait for it:
/// they are kept and shown (status, metrics, the log at start), go out in
/// order once it is back, or are given up by command, never silently.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_removed_from_the_config_keeps_its_queue_and_says_so() {
    use deskbridge::tools::sample_desk::Fault;
    let svc = Party::start("svc").await;
    let vendor = Party::start("vendor").await;
    let dir = tempfile::tempdir().unwrap();
    let both = format!(
        "{PARTIES}{}{}",
        svc.toml(dir.path(), "svc", ""),
        vendor.toml(dir.path(), "vendor", "")
    );
    let svc_only = format!("{PARTIES}{}", svc.toml(dir.path(), "svc", ""));
    let mut gw = Gateway::start_with(dir, &both);
    let head = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace(&both, "");
    let restart_with = |gw: &mut Gateway, rest: &str| {
        assert!(gw.terminate().success(), "{}", gw.log());
        std::fs::write(&gw.config, format!("{head}{rest}")).unwrap();
        gw.spawn();
    };
    svc.connect(&gw);
    vendor.connect(&gw);
    let t = svc.desk.create_ticket("Printer jam", "Floor 2", &[], "Ann");
    eventually("svc ticket accepted", 10, || async {
        svc.desk.unsent() == 0
    })
    .await;
    let out = gw.cli(&["transfer", "--from", &format!("svc:{t}"), "--to", "vendor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("vendor ticket created", 10, || async {
        vendor.desk.tickets().len() == 1
    })
    .await;
    let vt = vendor.desk.tickets().remove(0).id;
    let vendor_got = || -> Vec<String> {
        vendor
            .desk
            .ticket(&vt)
            .unwrap()
            .comments
            .iter()
            .map(|c| c.body.clone())
            .collect()
    };

    // The vendor is down; two comments wait for it; then it is taken out.
    vendor
        .desk
        .set_fault(Some(Fault::Status(503, "down".into())), None);
    for body in ["first", "second"] {
        svc.desk.comment(&t, body, Audience::Partner, "Ann", &[]);
    }
    eventually("both queued", 10, || async {
        gw.status().await["destinations"]["vendor"]["queued"] == 2
    })
    .await;
    restart_with(&mut gw, &svc_only);
    // Written just after the listeners open.
    eventually("the warning at start", 10, || async {
        gw.log()
            .contains("messages wait for an endpoint that is no longer configured to receive")
    })
    .await;
    let s = gw.status().await;
    assert_eq!(s["destinations"]["vendor"]["unconfigured"], true, "{s}");
    assert_eq!(s["destinations"]["vendor"]["queued"], 2, "{s}");
    assert!(
        s["destinations"]["svc"].get("unconfigured").is_none(),
        "{s}"
    );
    let text = String::from_utf8_lossy(&gw.cli(&["status"]).stdout).to_string();
    assert!(
        text.contains("vendor: NOT CONFIGURED to receive, 2 queued")
            && text.contains("deskbridge discard --queued-for vendor"),
        "{text}"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("deskbridge_unconfigured{destination=\"vendor\"} 1")
            && metrics.contains("deskbridge_queued{destination=\"vendor\"} 2")
            && !metrics.contains("deskbridge_unconfigured{destination=\"svc\"}"),
        "{metrics}"
    );
    // A configured endpoint's queue cannot be given up this way.
    let refused = gw.cli(&["discard", "--queued-for", "svc"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is configured to receive"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Back in the configuration and up again: both go, in order.
    vendor.desk.set_fault(None, None);
    restart_with(&mut gw, &both);
    eventually("the vendor gets both", 15, || async {
        vendor_got() == ["first", "second"]
    })
    .await;
    let s = gw.status().await;
    assert!(
        s["destinations"]["vendor"].get("unconfigured").is_none(),
        "{s}"
    );

    // One refused for good (a dead letter), then down and taken out
    // again, this time for good: its queue is given up through the
    // running daemon, and the link goes on without it.
    vendor
        .desk
        .set_fault(Some(Fault::Status(422, "no".into())), None);
    svc.desk
        .comment(&t, "refused", Audience::Partner, "Ann", &[]);
    eventually("a dead letter", 10, || async {
        gw.status().await["dead_letters"] == 1
    })
    .await;
    let dead_id = gw.get("/dead").await[0]["id"].as_str().unwrap().to_string();
    vendor
        .desk
        .set_fault(Some(Fault::Status(503, "down".into())), None);
    svc.desk.comment(&t, "third", Audience::Partner, "Ann", &[]);
    eventually("third queued", 10, || async {
        gw.status().await["destinations"]["vendor"]["queued"] == 1
    })
    .await;
    restart_with(&mut gw, &svc_only);
    let replay = gw.cli(&["replay", &dead_id]);
    assert!(!replay.status.success());
    assert!(
        String::from_utf8_lossy(&replay.stderr).contains("not configured to receive"),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let out = gw.cli(&["discard", &dead_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gw.cli(&["discard", "--queued-for", "vendor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 message queued for vendor discarded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(gw.status().await["destinations"].get("vendor").is_none());
    let again = gw.cli(&["discard", "--queued-for", "vendor"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing is queued for vendor"));
    vendor.desk.set_fault(None, None);
    restart_with(&mut gw, &both);
    svc.desk
        .comment(&t, "fourth", Audience::Partner, "Ann", &[]);
    eventually("the vendor gets the fourth", 15, || async {
        vendor_got().last().map(String::as_str) == Some("fourth")
    })
    .await;
    assert_eq!(vendor_got(), ["first", "second", "fourth"]);
}

/// One look at where the work stands across the chain, client to vendor,
/// and how long each company has held it.
#[tokio::test(flavor = "multi_thread")]
async fn links_show_the_whole_chain_and_how_long_each_company_held_it() {
    use deskbridge::event::Status;
    let client = Party::start("client").await;
    let svc = Party::start("svc").await;
    let vendor = Party::start("vendor").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}{}",
        client.toml(dir.path(), "client", ""),
        svc.toml(dir.path(), "svc", ""),
        vendor.toml(dir.path(), "vendor", "")
    );
    let gw = Gateway::start_with(dir, &conf);
    for p in [&client, &svc, &vendor] {
        p.connect(&gw);
    }
    let c = client
        .desk
        .create_ticket("Till 3 dead", "Store 12", &[], "Cy");
    eventually("client ticket accepted", 10, || async {
        client.desk.unsent() == 0
    })
    .await;
    let transfer = |from: String, to: &str| {
        let out = gw.cli(&["transfer", "--from", &from, "--to", to]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let first = transfer(format!("client:{c}"), "svc");
    eventually("svc ticket", 10, || async { svc.desk.tickets().len() == 1 }).await;
    let s = svc.desk.tickets().remove(0).id;
    svc.desk.set_status(&s, Status::InProgress, "Sam");
    let second = transfer(format!("svc:{s}"), "vendor");
    eventually("vendor ticket", 10, || async {
        vendor.desk.tickets().len() == 1
    })
    .await;
    let v = vendor.desk.tickets().remove(0).id;
    vendor.desk.set_status(&v, Status::Resolved, "Vi");
    // Seen from the vendor, and relayed to the service company's ticket
    // (over the second link: the chain reads each ticket's latest side).
    eventually("the vendor's resolution seen and relayed", 10, || async {
        let l = gw.get(&format!("/links/{first}")).await;
        l["chain"][2]["status"] == "resolved"
            && l["chain"][1]["status"] == "resolved"
            && l["chain"][0]["status"] == "resolved"
    })
    .await;

    // From either link, the same chain: client, svc, vendor.
    for id in [&first, &second] {
        let out = gw.cli(&["links", "show", id, "--json"]);
        let l: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let chain = l["chain"].as_array().unwrap();
        let at = |i: usize, f: &str| chain[i][f].clone();
        assert_eq!(chain.len(), 3, "{l}");
        assert_eq!(
            (0..3).map(|i| at(i, "endpoint")).collect::<Vec<_>>(),
            ["client", "svc", "vendor"],
            "{l}"
        );
        assert_eq!(
            (0..3).map(|i| at(i, "depth")).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(at(0, "ticket"), c.as_str());
        assert!(
            at(0, "got_at").is_null() && at(0, "held_secs").is_null(),
            "{l}"
        );
        // The vendor's resolution, set on the service company's ticket,
        // climbed on to the client.
        assert_eq!(at(0, "status"), "resolved");
        assert_eq!(at(0, "status_relayed"), true);
        assert_eq!(at(1, "link"), first.as_str());
        assert_eq!(at(1, "status"), "resolved");
        assert_eq!(at(1, "status_relayed"), true);
        assert!(at(1, "done_at").is_string(), "{l}");
        assert!(at(1, "held_secs").as_i64().unwrap() >= 0, "{l}");
        assert_eq!(at(2, "link"), second.as_str());
        assert_eq!(at(2, "ticket"), v.as_str());
        assert_eq!(at(2, "party"), "Vendor Co");
        assert_eq!(at(2, "status"), "resolved");
        assert_eq!(at(2, "status_relayed"), false);
        assert!(
            at(2, "done_at").is_string() && at(2, "status_at").is_string(),
            "{l}"
        );
        assert!(at(2, "held_secs").as_i64().unwrap() >= 0, "{l}");
    }
    let text = String::from_utf8_lossy(&gw.cli(&["links", "show", &second]).stdout).to_string();
    assert!(
        text.contains("chain (the work, from the company it came from):")
            && text.contains(&format!(
                "svc (Service Co) ticket {s}, resolved (relayed from its partner) since"
            ))
            && text.matches("held it").count() == 2
            && text.contains(&format!("vendor (Vendor Co) ticket {v}, resolved since"))
            && text.contains("<- this link"),
        "{text}"
    );
}

/// A four-level chain of webhook desks: a retail chain's ticket goes to
/// the service company, on to the vendor, on to a regional partner. What
/// deskbridge sets on a middle company's ticket climbs on, hop by hop,
/// under each hop's rules (the vendor checks its partner's work first:
/// the partner's "resolved" is "in progress" for it), never back the way
/// it came; the daemon is killed with SIGKILL on the way.
#[tokio::test(flavor = "multi_thread")]
async fn statuses_climb_a_four_level_chain_hop_by_hop() {
    use deskbridge::event::Status;
    let client = Party::start("client").await;
    let svc = Party::start("svc").await;
    let vendor = Party::start("vendor").await;
    let partner = Party::start("partner").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}
[parties.partner]
name = \"Regional Partner\"
role = \"subcontractor\"
{}{}{}{}
[[transfers]]
from = \"client\"
to = \"svc\"
",
        client.toml(dir.path(), "client", ""),
        svc.toml(dir.path(), "svc", ""),
        vendor.toml(
            dir.path(),
            "vendor",
            "status_from_partner = { resolved = \"in_progress\" }"
        ),
        partner.toml(dir.path(), "partner", ""),
    );
    let mut gw = Gateway::start_with(dir, &conf);
    for p in [&client, &svc, &vendor, &partner] {
        p.connect(&gw);
    }
    let c = client
        .desk
        .create_ticket("Freezer 4 warm", "Store 12", &[], "Cy");
    eventually("the service company's ticket", 20, || async {
        svc.desk.tickets().len() == 1
    })
    .await;
    // Each company hands it on in turn (`deskbridge transfer`).
    let hand_on = |from: &Party, to: &str| {
        let t = from.desk.tickets().remove(0).id;
        let out = gw.cli(&[
            "transfer",
            "--from",
            &format!("{}:{t}", from.endpoint),
            "--to",
            to,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    hand_on(&svc, "vendor");
    eventually("the vendor's ticket", 20, || async {
        vendor.desk.tickets().len() == 1
    })
    .await;
    hand_on(&vendor, "partner");
    eventually("the ticket reaches the regional partner", 20, || async {
        partner.desk.tickets().len() == 1
    })
    .await;
    let one = |p: &Party| p.desk.tickets().remove(0);
    let (s, v, r) = (one(&svc).id, one(&vendor).id, one(&partner).id);
    let statuses = || {
        [
            client.desk.ticket(&c).unwrap().status,
            svc.desk.ticket(&s).unwrap().status,
            vendor.desk.ticket(&v).unwrap().status,
            partner.desk.ticket(&r).unwrap().status,
        ]
    };

    // The partner starts work: every company up the chain sees it.
    partner.desk.set_status(&r, Status::InProgress, "Rita");
    eventually("in progress up to the client", 20, || async {
        statuses() == [Status::InProgress; 4]
    })
    .await;

    // The partner resolves: for the vendor that is "check the partner's
    // work" (in progress), and that is what climbs, not "resolved".
    gw.kill9();
    partner.desk.set_status(&r, Status::Resolved, "Rita");
    gw.spawn();
    eventually(
        "the partner's resolution taken and every queue empty",
        20,
        || async {
            let st = gw.status().await;
            partner.desk.unsent() == 0
                && st["destinations"]
                    .as_object()
                    .is_some_and(|d| d.values().all(|x| x["queued"] == 0 && x["in_flight"] == 0))
                && gw.get("/links").await.as_array().is_some_and(|ls| {
                    ls.iter().any(|l| {
                        l["downstream"]["endpoint"] == "partner"
                            && l["downstream"]["status"] == "resolved"
                    })
                })
        },
    )
    .await;
    // Some rounds later, still so.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        statuses(),
        [
            Status::InProgress,
            Status::InProgress,
            Status::InProgress,
            Status::Resolved
        ],
        "the vendor checks first; nothing bounced back down"
    );

    // The vendor confirms and resolves: up to the client, not back down.
    vendor.desk.set_status(&v, Status::Resolved, "Vi");
    eventually("resolved up to the client", 20, || async {
        statuses() == [Status::Resolved; 4]
    })
    .await;
    // Each desk shows its partner's ticket and that ticket's status: the
    // client sees the service company's, the service company the
    // vendor's, the vendor its partner's; and each downstream ticket its
    // upstream one.
    let shows = |p: &Party, id: &str| {
        let t = p.desk.ticket(id).unwrap();
        let (party, ticket) = t.partner.unwrap_or_default();
        (party, ticket.unwrap_or_default(), t.partner_status)
    };
    let is = |party: &str, ticket: &str, status: Option<&str>| {
        (
            party.to_string(),
            ticket.to_string(),
            status.map(str::to_string),
        )
    };
    eventually(
        "each desk shows its partner's ticket and status",
        20,
        || async {
            shows(&client, &c) == is("Service Co", &s, Some("resolved"))
                && shows(&svc, &s) == is("Vendor Co", &v, Some("resolved"))
                && shows(&vendor, &v) == is("Regional Partner", &r, Some("resolved"))
                && shows(&partner, &r).0 == "Vendor Co"
        },
    )
    .await;
    // Each company's ticket got each status once: the desks record one
    // status entry per change they were sent.
    let l = gw.get("/links").await;
    assert_eq!(l.as_array().map(Vec::len), Some(3), "{l}");
    assert_eq!(gw.status().await["dead_letters"], 0);
}
