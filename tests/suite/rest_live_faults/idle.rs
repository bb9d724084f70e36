//! Live: what an idle Request Tracker ↔ Redmine pair costs each polling
//! round (issue #18). Once what crossed has settled, a round reads each
//! product's list of changes and nothing else: no ticket is read again,
//! no event is taken, nothing is delivered. Each product is reached
//! through a proxy that counts the requests; the test has its own RT queue
//! and Redmine project, so parallel tests' tickets are not in its lists.
use crate::common::faulty::FaultyProxy;
use crate::common::redmine::*;
use crate::common::rest::*;
use crate::common::rt::*;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

/// Idle rounds measured per endpoint.
const IDLE_ROUNDS: u64 = 6;

/// "METHOD path" of a request (its query left out), for the report.
fn shape(req: &str) -> String {
    req.split('?').next().unwrap_or(req).to_string()
}

/// How many requests of each shape.
fn by_shape(reqs: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in reqs {
        *out.entry(shape(r)).or_default() += 1;
    }
    out
}

/// The figures /status gives for one endpoint's poller.
fn figures(status: &Value, endpoint: &str) -> (u64, u64, u64) {
    let p = &status["pollers"][endpoint];
    let n = |k: &str| {
        p[k].as_u64()
            .unwrap_or_else(|| panic!("{endpoint}.{k}: {status}"))
    };
    (n("rounds"), n("taken"), n("last_round_reads"))
}

fn delivered(status: &Value) -> BTreeMap<String, u64> {
    status["destinations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, d)| (k.clone(), d["delivered"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_rt_redmine_pair_reads_only_its_lists_each_round() {
    let (Some(rt), Some(rm)) = (rt(), redmine()) else {
        return;
    };
    let rt = rt.own_queue("idle").await;
    let rm = rm.own_project("idle").await;
    let key = rm.service_key().await;
    let rt_proxy = FaultyProxy::start(&rt.rest).await;
    let rm_proxy = FaultyProxy::start(&rm.url).await;
    let dir = tempfile::tempdir().unwrap();
    let rt_ep = RestEndpoint {
        name: "rt",
        service_account: &rt.user,
        base_url: &rt_proxy.url,
        credentials: &rt.token,
        credentials_file: "rt.token",
        project: &rt.queue,
        extra: "",
    }
    .toml(dir.path())
    .replacen("party = \"vendor\"", "party = \"svc\"", 1);
    let rm_ep = RestEndpoint {
        name: "redmine",
        service_account: REDMINE_SERVICE_LOGIN,
        base_url: &rm_proxy.url,
        credentials: &key,
        credentials_file: "redmine.key",
        project: &rm.project,
        extra: "",
    }
    .toml(dir.path());
    // As examples/rt-to-redmine.toml, poll_secs = 1.
    let conf = format!(
        "{PARTIES}{rt_ep}[endpoints.rt.policy]\nshare_client_conversation = true\npartner_comments = \"internal\"\n{rm_ep}\n[[transfers]]\nfrom = \"rt\"\nto = \"redmine\"\n"
    );
    let gw = Gateway::start_with(dir, &conf);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // 1. A linked pair with comments crossed both ways.
    let subject = format!("Printer jams on tray 2 {}", uuid::Uuid::new_v4().simple());
    let ticket = rt.create(&subject, "Jams every 20 pages.", json!({})).await;
    let issue = first_some(300, POLL, || rm.find_by_subject(&subject))
        .await
        .unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
    for i in 0..3 {
        rt.write(&ticket, "correspond", &format!("desk update {i}"))
            .await;
        rm.put_issue(&issue, json!({ "notes": format!("vendor update {i}") }))
            .await;
    }
    assert!(
        within(120, POLL, || async {
            let notes = rm.issue(&issue).await;
            let h = rt.history(&ticket).await;
            (0..3).all(|i| {
                notes_containing(&notes, &format!("desk update {i}")).len() == 1
                    && texts_containing(&h, "Comment", &format!("vendor update {i}")).len() == 1
            })
        })
        .await,
        "timed out: every update crossed:\n{}",
        gw.log()
    );

    let crossed = gw.status().await;
    let crossed_at = (rt_proxy.requests().len(), rm_proxy.requests().len());

    // 2. Settled: nothing queued, and both pollers' last rounds read no
    //    ticket (what deskbridge wrote last is read once more, then not
    //    again).
    let settled = within(60, POLL, || async {
        if !gw.idle().await {
            return false;
        }
        rounds_pass(&gw, "rt", 2).await;
        rounds_pass(&gw, "redmine", 2).await;
        let s = gw.status().await;
        gw.idle().await && figures(&s, "rt").2 == 0 && figures(&s, "redmine").2 == 0
    })
    .await;
    assert!(
        settled,
        "never settled: {}\n{}",
        gw.status().await,
        gw.log()
    );

    // 3. Idle rounds: each reads only the list of changes.
    let before = gw.status().await;
    let seen = (rt_proxy.requests().len(), rm_proxy.requests().len());
    // What settling cost, for the report.
    for (endpoint, reqs) in [
        ("rt", rt_proxy.requests()[crossed_at.0..seen.0].to_vec()),
        (
            "redmine",
            rm_proxy.requests()[crossed_at.1..seen.1].to_vec(),
        ),
    ] {
        let (r0, taken0, _) = figures(&crossed, endpoint);
        let (r1, taken1, _) = figures(&before, endpoint);
        println!(
            "{endpoint}: settling after the last change crossed: {} rounds, {} requests {:?}; events taken {taken0} → {taken1}",
            r1 - r0,
            reqs.len(),
            by_shape(&reqs)
        );
    }
    rounds_pass(&gw, "rt", IDLE_ROUNDS).await;
    rounds_pass(&gw, "redmine", IDLE_ROUNDS).await;
    let after = gw.status().await;
    let requests = [
        (
            "rt",
            rt_proxy.requests().split_off(seen.0),
            "/tickets?query=",
        ),
        (
            "redmine",
            rm_proxy.requests().split_off(seen.1),
            "/issues.json?project_id=",
        ),
    ];
    for (endpoint, reqs, list) in &requests {
        let (r0, taken0, _) = figures(&before, endpoint);
        let (r1, taken1, reads) = figures(&after, endpoint);
        let rounds = r1 - r0;
        println!(
            "{endpoint}: {rounds} idle rounds, {} requests ({:.2} a round): {:?}; events taken {taken0} → {taken1}, tickets read in the last round {reads}",
            reqs.len(),
            reqs.len() as f64 / rounds as f64,
            by_shape(reqs)
        );
        let other: Vec<&String> = reqs.iter().filter(|r| !r.contains(list)).collect();
        assert!(
            other.is_empty(),
            "{endpoint}: an idle round read more than its list: {other:#?}\n{}",
            gw.log()
        );
        // One list request a round (the request in flight at either end
        // of the window may fall on either side of it).
        let lists = reqs.len() as u64;
        assert!(
            lists + 1 >= rounds && lists <= rounds + 1,
            "{endpoint}: {lists} list requests in {rounds} rounds: {reqs:#?}"
        );
        assert_eq!(taken1, taken0, "{endpoint}: events taken while idle");
        assert_eq!(reads, 0, "{endpoint}: tickets read while idle");
    }
    assert_eq!(
        delivered(&after),
        delivered(&before),
        "delivered while idle"
    );
    assert_eq!(after["dead_letters"], 0, "{after}");
}
