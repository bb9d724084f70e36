//! Live, across products: a Redmine 5 desk escalating to a vendor on
//! django-helpdesk 2.6, and a django-helpdesk desk escalating to a vendor
//! on Request Tracker 5, every side over the REST connector (the first
//! with the daemon killed by SIGKILL while both sides write). The services
//! are started by scripts/test.sh (scripts/services/*.sh).

use crate::common::djhd::*;
use crate::common::redmine::*;
use crate::common::rest::*;
use crate::common::rt::*;
use crate::common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

/// The django-helpdesk endpoint's tables, for `party`. With `page_size`,
/// the shipped profile as a profile file listing that many follow-ups a
/// page (a round then walks several pages back from the list's end).
fn djhd_endpoint(dir: &Path, dh: &Djhd, party: &str, page_size: Option<u32>) -> String {
    std::fs::write(dir.join("djhd.password"), &dh.password).unwrap();
    let profile = match page_size {
        None => "profile = \"django-helpdesk\"".to_string(),
        Some(n) => {
            let shipped = std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/connectors/django-helpdesk.toml"
            ))
            .unwrap();
            let file = dir.join("django-helpdesk.toml");
            let small = shipped.replace("page_size = 100", &format!("page_size = {n}"));
            assert_ne!(small, shipped, "the profile's page_size moved");
            std::fs::write(&file, small).unwrap();
            format!("profile_file = \"{}\"", file.display())
        }
    };
    format!(
        r#"[endpoints.django-helpdesk]
party = "{party}"
kind = "rest"
service_account = "{user}"
[endpoints.django-helpdesk.rest]
{profile}
base_url = "{url}"
username = "{user}"
credentials = {{ file = "{file}" }}
project = "{queue}"
settings = {{ user_id = "{user_id}" }}
poll_secs = 1
rate_limit_per_minute = 1200
"#,
        user = dh.user,
        url = dh.url,
        file = dir.join("djhd.password").display(),
        queue = dh.queue,
        user_id = dh.user_id,
    )
}

/// The desk's policy: its public conversation crosses, the vendor's notes
/// arrive as internal notes.
const DESK_POLICY: &str = r#"share_client_conversation = true
allowed_fields = ["description", "priority"]
partner_comments = "internal"
"#;

const PARTIES: &str = r#"[parties.desk]
name = "Acme IT Services"
role = "service_company"

[parties.vendor]
name = "PrintCo Support"
role = "vendor"

"#;

/// The Redmine desk's endpoint (its key written to `dir`): `rest` ends its
/// `rest` table, `policy` is its policy table.
fn redmine_desk(dir: &Path, rm: &Redmine, key: &str, rest: &str, policy: &str) -> String {
    redmine_endpoint(dir, rm, key, "desk", rest, policy)
}

/// Redmine's endpoint for `party`, as `redmine_desk`.
fn redmine_endpoint(
    dir: &Path,
    rm: &Redmine,
    key: &str,
    party: &str,
    rest: &str,
    policy: &str,
) -> String {
    std::fs::write(dir.join("redmine.key"), key).unwrap();
    format!(
        r#"[endpoints.redmine]
party = "{party}"
kind = "rest"
service_account = "{REDMINE_SERVICE_LOGIN}"
[endpoints.redmine.rest]
profile = "redmine"
base_url = "{url}"
credentials = {{ file = "{file}" }}
project = "{project}"
poll_secs = 1
rate_limit_per_minute = 1200
{rest}
[endpoints.redmine.policy]
{policy}
"#,
        url = rm.url,
        file = dir.join("redmine.key").display(),
        project = rm.project,
    )
}

fn started(dir: tempfile::TempDir, conf: &str) -> Gateway {
    let gw = Gateway::start_with(dir, conf);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    gw
}

/// The first polling round of each endpoint only sets its cursor (what
/// exists before it is not replayed): the test writes after it. With
/// `poll_secs = 1` it is over within a second of the start.
async fn first_rounds() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redmine_desk_escalates_to_django_helpdesk_vendor() {
    let (Some(rm), Some(dh)) = (redmine(), djhd()) else {
        return;
    };
    let key = rm.service_key().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"redmine\"\nto = \"django-helpdesk\"\n",
        redmine_desk(dir.path(), &rm, &key, "", DESK_POLICY),
        djhd_endpoint(dir.path(), &dh, "vendor", None),
    );
    let mut gw = started(dir, &conf);
    first_rounds().await;

    // 1. A Redmine issue becomes a django-helpdesk ticket.
    let subject = format!("Toner smears on A3 {}", uuid::Uuid::new_v4().simple());
    let (code, v) = rm
        .call(
            reqwest::Method::POST,
            "/issues.json",
            Some(
                json!({"issue": {"project_id": rm.project, "subject": subject,
                "description": "Smears since the last service visit."}}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let issue = v["issue"]["id"].to_string();
    let id = first_some(300, POLL, || dh.find_by_title(&subject))
        .await
        .unwrap_or_else(|| panic!("no django-helpdesk ticket:\n{}", gw.log()));
    let description = dh.ticket(&id).await["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(description.contains("Smears since"), "{description}");

    // 2. Redmine's public note crosses; its private note does not.
    rm.put_issue(&issue, json!({"notes": "Client needs it by Monday"}))
        .await;
    rm.put_issue(
        &issue,
        json!({"notes": "Client is slow to pay", "private_notes": true}),
    )
    .await;
    assert!(
        within(60, POLL, || async {
            followups_containing(&dh.followups(&id).await, "by Monday").len() == 1
        })
        .await,
        "timed out: the Redmine note is a follow-up:\n{}",
        gw.log()
    );

    // 3. django-helpdesk's public follow-up reaches Redmine as a private
    //    note; its internal follow-up stays home.
    dh.follow_up(&id, "Drum replaced, on site Friday", true, None)
        .await;
    dh.follow_up(&id, "Drum cost 90 EUR", false, None).await;
    assert!(
        within(60, POLL, || async {
            notes_containing(&rm.issue(&issue).await, "on site Friday").len() == 1
        })
        .await,
        "timed out: the follow-up is a Redmine note:\n{}",
        gw.log()
    );
    let note = notes_containing(&rm.issue(&issue).await, "on site Friday").remove(0);
    assert_eq!(note["private_notes"], true, "{note}");

    // 3a. Files both ways, read back from each product byte for byte.
    let report = vendor_file();
    rm.note_with_file(
        &issue,
        "Service report attached",
        "Servicebericht №4.pdf",
        &report,
    )
    .await;
    let photo: Vec<u8> = report.iter().rev().copied().collect();
    dh.follow_up_with_file(&id, "Photo of the drum", "drum.jpg", &photo)
        .await;
    assert!(
        within(60, POLL, || async {
            dh.files(&id)
                .await
                .iter()
                .any(|(n, _)| n == "Servicebericht №4.pdf")
                && rm.files(&issue).await.iter().any(|(n, _)| n == "drum.jpg")
        })
        .await,
        "timed out: the files crossed:\n{}",
        gw.log()
    );
    assert_files_landed(
        &dh.files(&id).await,
        &[("Servicebericht №4.pdf".to_string(), report.clone())],
    );
    assert_files_landed(&rm.files(&issue).await, &[("drum.jpg".to_string(), photo)]);

    // 3b. Both sides write while the daemon is killed with SIGKILL.
    for i in 0..4 {
        rm.put_issue(&issue, json!({ "notes": format!("desk update {i} of 4") }))
            .await;
        dh.follow_up(&id, &format!("vendor update {i} of 4"), true, None)
            .await;
        if i == 1 {
            gw.kill9();
            gw.spawn();
        }
    }
    assert!(
        within(120, POLL, || async {
            let f = dh.followups(&id).await;
            let notes = rm.issue(&issue).await;
            (0..4).all(|i| {
                followups_containing(&f, &format!("desk update {i} of 4")).len() == 1
                    && notes_containing(&notes, &format!("vendor update {i} of 4")).len() == 1
            })
        })
        .await,
        "timed out: every update crossed once:\n{}",
        gw.log()
    );

    // 4. django-helpdesk resolves: Redmine shows it.
    dh.follow_up(&id, "", false, Some(3)).await;
    assert!(
        within(60, POLL, || async {
            rm.issue(&issue).await["status"]["id"] == 3
        })
        .await,
        "timed out: Redmine shows the resolution:\n{}",
        gw.log()
    );

    // 5. Quiet rounds: nothing doubled, echoed or leaked.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let f = dh.followups(&id).await;
    let notes = rm.issue(&issue).await;
    assert_eq!(followups_containing(&f, "by Monday").len(), 1);
    assert!(followups_containing(&f, "slow to pay").is_empty());
    assert!(followups_containing(&f, "on site Friday").len() == 1);
    assert_eq!(notes_containing(&notes, "on site Friday").len(), 1);
    assert_eq!(notes_containing(&notes, "by Monday").len(), 1);
    assert!(notes_containing(&notes, "90 EUR").is_empty());
    for i in 0..4 {
        let desk = format!("desk update {i} of 4");
        let vendor = format!("vendor update {i} of 4");
        assert_eq!(followups_containing(&f, &desk).len(), 1, "{desk}");
        assert_eq!(
            followups_containing(&f, &vendor).len(),
            1,
            "{vendor} echoed"
        );
        assert_eq!(notes_containing(&notes, &vendor).len(), 1, "{vendor}");
        assert_eq!(notes_containing(&notes, &desk).len(), 1, "{desk} echoed");
    }
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn django_helpdesk_desk_escalates_to_rt_vendor() {
    let (Some(dh), Some(rt)) = (djhd(), rt()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rt.token"), &rt.token).unwrap();
    let conf = format!(
        r#"{PARTIES}{djhd}[endpoints.django-helpdesk.policy]
{DESK_POLICY}
[endpoints.rt]
party = "vendor"
kind = "rest"
service_account = "{rt_user}"
[endpoints.rt.rest]
profile = "rt"
base_url = "{rt_url}"
credentials = {{ file = "{file}" }}
project = "{queue}"
poll_secs = 1
rate_limit_per_minute = 1200

[[transfers]]
from = "django-helpdesk"
to = "rt"
"#,
        djhd = djhd_endpoint(dir.path(), &dh, "desk", Some(5)),
        rt_user = rt.user,
        rt_url = rt.rest,
        file = dir.path().join("rt.token").display(),
        queue = rt.queue,
    );
    // On a fresh instance this may be the first test to write: two older
    // tickets, whose follow-ups come before the test's own in the list.
    loop {
        let (_, all) = dh
            .call(reqwest::Method::GET, "/tickets/?page_size=1", None)
            .await;
        if all["count"].as_u64().unwrap() >= 2 {
            break;
        }
        let (code, v) = dh
            .call(
                reqwest::Method::POST,
                "/tickets/",
                Some(json!({"queue": dh.queue.parse::<u64>().unwrap(),
                "title": format!("Older ticket {}", uuid::Uuid::new_v4().simple()),
                "description": "Filler.", "priority": 3, "submitter_email": "dana@example.net"})),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
    let gw = started(dir, &conf);
    first_rounds().await;

    // 1. A django-helpdesk ticket becomes an RT ticket.
    let subject = format!("Badge reader offline {}", uuid::Uuid::new_v4().simple());
    let (code, v) = dh
        .call(
            reqwest::Method::POST,
            "/tickets/",
            Some(
                json!({"queue": dh.queue.parse::<u64>().unwrap(), "title": subject,
                "description": "Door 3 reader shows no light.", "priority": 3,
                "submitter_email": "dana@example.net"}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let id = v["id"].to_string();
    let (_, all) = dh
        .call(reqwest::Method::GET, "/tickets/?page_size=1", None)
        .await;
    assert!(
        all["count"].as_u64().unwrap() > 2,
        "the list is more than a page: {all}"
    );
    let ticket = first_some(300, POLL, || rt.find_by_subject(&subject))
        .await
        .unwrap_or_else(|| panic!("no RT ticket:\n{}", gw.log()));
    let created = texts_containing(&rt.history(&ticket).await, "Create", "no light");
    assert_eq!(created.len(), 1);

    // 2. django-helpdesk's public follow-up crosses; its internal one does not.
    dh.follow_up(&id, "Client says the fuse is fine", true, None)
        .await;
    dh.follow_up(&id, "Client owes us two invoices", false, None)
        .await;
    assert!(
        within(60, POLL, || async {
            rt.history(&ticket)
                .await
                .iter()
                .filter(|t| {
                    t["Content"]
                        .as_str()
                        .is_some_and(|c| c.contains("fuse is fine"))
                })
                .count()
                == 1
        })
        .await,
        "timed out: the follow-up reached RT:\n{}",
        gw.log()
    );

    // 3. RT's correspond reaches django-helpdesk as an internal follow-up;
    //    its comment stays home.
    rt.write(&ticket, "correspond", "Technician on site Friday")
        .await;
    rt.write(&ticket, "comment", "Our cost: 40 EUR").await;
    assert!(
        within(60, POLL, || async {
            followups_containing(&dh.followups(&id).await, "on site Friday").len() == 1
        })
        .await,
        "timed out: the correspond is a follow-up:\n{}",
        gw.log()
    );
    let f = followups_containing(&dh.followups(&id).await, "on site Friday").remove(0);
    assert_eq!(f["public"], false, "{f}");
    assert_eq!(f["user"].to_string(), dh.user_id);

    // 3a. Files both ways, read back from each product byte for byte.
    let sheet = vendor_file();
    dh.follow_up_with_file(&id, "Wiring sheet attached", "Schaltplan №3.pdf", &sheet)
        .await;
    let log: Vec<u8> = sheet.iter().rev().copied().collect();
    rt.write_with_file(
        &ticket,
        "correspond",
        "Reader log attached",
        "reader-log.pdf",
        &log,
    )
    .await;
    assert!(
        within(60, POLL, || async {
            rt.files(&ticket)
                .await
                .iter()
                .any(|(n, _)| n == "Schaltplan №3.pdf")
                && dh
                    .files(&id)
                    .await
                    .iter()
                    .any(|(n, _)| n == "reader-log.pdf")
        })
        .await,
        "timed out: the files crossed:\n{}",
        gw.log()
    );
    assert_files_landed(
        &rt.files(&ticket).await,
        &[("Schaltplan №3.pdf".to_string(), sheet.clone())],
    );
    assert_files_landed(&dh.files(&id).await, &[("reader-log.pdf".to_string(), log)]);

    // 4. RT resolves: django-helpdesk shows it (status 3).
    rt.set_status(&ticket, "resolved").await;
    assert!(
        within(60, POLL, || async { dh.ticket(&id).await["status"] == 3 }).await,
        "timed out: django-helpdesk shows the resolution:\n{}",
        gw.log()
    );

    // 5. Quiet rounds: nothing doubled, echoed or leaked.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let f = dh.followups(&id).await;
    let h = rt.history(&ticket).await;
    let in_rt = |text: &str| {
        h.iter()
            .filter(|t| t["Content"].as_str().is_some_and(|c| c.contains(text)))
            .count()
    };
    assert_eq!(in_rt("fuse is fine"), 1);
    assert_eq!(in_rt("two invoices"), 0);
    assert_eq!(in_rt("on site Friday"), 1, "no echo into RT");
    assert_eq!(followups_containing(&f, "on site Friday").len(), 1);
    assert!(followups_containing(&f, "40 EUR").is_empty());
    assert_eq!(followups_containing(&f, "fuse is fine").len(), 1);
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}

/// A Redmine desk hands over an issue with its priority, due date and
/// site; django-helpdesk shows each in its own field, and follows the
/// desk's later changes. A change django-helpdesk does not take (a custom
/// field the site does not have) becomes a dead letter with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn redmine_hands_over_its_fields_to_django_helpdesk() {
    let (Some(rm), Some(dh)) = (redmine(), djhd()) else {
        return;
    };
    let key = rm.service_key().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        "custom_fields = {{ site = \"{}\", equipment = \"{}\", serial_number = \"{}\" }}",
        rm.cf["site"], rm.cf["equipment"], rm.cf["serial_number"]
    );
    let policy = r#"allowed_fields = ["description", "priority", "due", "site", "equipment", "serial_number"]"#;
    let conf = format!(
        "{PARTIES}{}{}custom_fields = {{ site = \"site\", serial_number = \"no_such_field\" }}\n[[transfers]]\nfrom = \"redmine\"\nto = \"django-helpdesk\"\n",
        redmine_desk(dir.path(), &rm, &key, &rest, policy),
        djhd_endpoint(dir.path(), &dh, "vendor", None),
    );
    let gw = started(dir, &conf);
    first_rounds().await;

    let subject = format!("Till drawer stuck {}", uuid::Uuid::new_v4().simple());
    let cf = |k: &str, v: &str| json!({"id": rm.cf[k].parse::<u64>().unwrap(), "value": v});
    let (code, v) = rm
        .call(
            reqwest::Method::POST,
            "/issues.json",
            Some(
                json!({"issue": {"project_id": rm.project, "subject": subject,
                "description": "Drawer does not open.", "priority_id": 3,
                "due_date": "2026-12-21",
                "custom_fields": [cf("site", "Store 3, Hull"), cf("equipment", "Till TP-9")]}}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let issue = v["issue"]["id"].to_string();
    let id = first_some(300, POLL, || dh.find_by_title(&subject))
        .await
        .unwrap_or_else(|| panic!("no django-helpdesk ticket:\n{}", gw.log()));
    // Read back through django-helpdesk's own API.
    let t = dh.ticket(&id).await;
    assert_eq!(t["priority"], 2, "High is django-helpdesk's 2: {t}");
    assert_eq!(t["due_date"], "2026-12-21T00:00:00Z", "{t}");
    assert_eq!(t["custom_site"], "Store 3, Hull", "{t}");
    // No custom field for the equipment here: in the text.
    let description = t["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("Drawer does not open."),
        "{description}"
    );
    assert!(
        description.contains("Equipment: Till TP-9"),
        "{description}"
    );

    // The desk raises the priority and changes the site: django-helpdesk
    // follows.
    rm.put_issue(
        &issue,
        json!({"priority_id": 4, "custom_fields": [cf("site", "Store 4, Hull")]}),
    )
    .await;
    assert!(
        within(120, POLL, || async {
            let t = dh.ticket(&id).await;
            t["priority"] == 1 && t["custom_site"] == "Store 4, Hull"
        })
        .await,
        "timed out: django-helpdesk follows: {}\n{}",
        dh.ticket(&id).await,
        gw.log()
    );

    // A serial number for a custom field django-helpdesk does not have: it
    // answers 200 and keeps nothing, so the change is a dead letter that
    // says so, not a change counted as applied.
    rm.put_issue(
        &issue,
        json!({"custom_fields": [cf("serial_number", "SN-12")]}),
    )
    .await;
    assert!(
        within(120, POLL, || async {
            gw.status().await["dead_letters"] == 1
        })
        .await,
        "timed out: a dead letter:\n{}",
        gw.log()
    );
    let dead = gw.cli(&["dead"]);
    let said = String::from_utf8_lossy(&dead.stdout);
    assert!(
        said.contains("did not take serial_number") && said.contains("custom_fields"),
        "{said}"
    );
}

/// The value of a Redmine issue's custom field.
fn rm_cf(issue: &serde_json::Value, id: &str) -> Option<String> {
    issue["custom_fields"]
        .as_array()?
        .iter()
        .find(|c| c["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
        .and_then(|c| c["value"].as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// How many of the issue's journal entries change custom field `id`.
fn rm_cf_changes(issue: &serde_json::Value, id: &str) -> usize {
    journals(issue)
        .iter()
        .flat_map(|j| j["details"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["property"] == "cf" && d["name"].as_str() == Some(id))
        .count()
}

/// Each side shows its partner's ticket id and status, in its own custom
/// fields, read back through each product's API: django-helpdesk (a
/// private instance, with the set-up's `partner_ticket` and
/// `partner_status`) and Redmine. `djhd_upstream`: django-helpdesk hands
/// its ticket over to Redmine (it learns Redmine's id after the transfer),
/// else Redmine hands over to django-helpdesk (the new ticket carries the
/// issue's id). deskbridge's writes there do not come back as changes, no
/// note is written where a field holds it, nothing is doubled.
async fn each_side_shows_its_partner(djhd_upstream: bool) {
    let (Some(rm), Some(p)) = (redmine(), PrivateDjhd::start()) else {
        return;
    };
    let dh = &p.dh;
    for f in ["partner_ticket", "partner_status"] {
        assert!(
            p.custom_fields.iter().any(|c| c == f),
            "{:?}",
            p.custom_fields
        );
    }
    let key = rm.service_key().await;
    let dir = tempfile::tempdir().unwrap();
    let rm_fields = format!(
        "custom_fields = {{ partner_ticket = \"{}\", partner_status = \"{}\" }}",
        rm.cf["partner_ticket"], rm.cf["partner_status"]
    );
    let dh_fields = "custom_fields = { partner_ticket = \"partner_ticket\", partner_status = \"partner_status\" }\n";
    let (djhd_party, rm_party, from, to) = if djhd_upstream {
        ("desk", "vendor", "django-helpdesk", "redmine")
    } else {
        ("vendor", "desk", "redmine", "django-helpdesk")
    };
    let conf = format!(
        "{PARTIES}{}{dh_fields}[endpoints.django-helpdesk.policy]\n{DESK_POLICY}\n{}\n[[transfers]]\nfrom = \"{from}\"\nto = \"{to}\"\n",
        djhd_endpoint(dir.path(), dh, djhd_party, None),
        redmine_endpoint(dir.path(), &rm, &key, rm_party, &rm_fields, DESK_POLICY),
    );
    let gw = started(dir, &conf);
    first_rounds().await;

    // 1. The hand-over: each side shows the other's ticket id.
    let subject = format!("Label printer jams {}", uuid::Uuid::new_v4().simple());
    let (id, issue) = if djhd_upstream {
        let (code, v) = dh
            .call(
                reqwest::Method::POST,
                "/tickets/",
                Some(
                    json!({"queue": dh.queue.parse::<u64>().unwrap(), "title": subject,
                    "description": "Jams every tenth label.", "priority": 3,
                    "submitter_email": "dana@example.net"}),
                ),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let id = v["id"].to_string();
        let issue = first_some(300, POLL, || rm.find_by_subject(&subject))
            .await
            .unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
        (id, issue)
    } else {
        let (code, v) = rm
            .call(
                reqwest::Method::POST,
                "/issues.json",
                Some(
                    json!({"issue": {"project_id": rm.project, "subject": subject,
                    "description": "Jams every tenth label."}}),
                ),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let issue = v["issue"]["id"].to_string();
        let id = first_some(300, POLL, || dh.find_by_title(&subject))
            .await
            .unwrap_or_else(|| panic!("no django-helpdesk ticket:\n{}", gw.log()));
        (id, issue)
    };
    let shown =
        |t: &serde_json::Value, f: &str| t[format!("custom_{f}")].as_str().map(str::to_string);
    assert!(
        within(60, POLL, || async {
            shown(&dh.ticket(&id).await, "partner_ticket").as_deref() == Some(issue.as_str())
                && rm_cf(&rm.issue(&issue).await, &rm.cf["partner_ticket"]).as_deref()
                    == Some(id.as_str())
        })
        .await,
        "timed out: each shows the other's id: {}\n{}\n{}",
        dh.ticket(&id).await,
        rm.issue(&issue).await,
        gw.log()
    );
    let notes_before = dh.followups(&id).await.len();

    // 2. Redmine's staff change its status: django-helpdesk shows each.
    for (status_id, canonical) in [(2, "in_progress"), (4, "waiting")] {
        rm.put_issue(&issue, json!({ "status_id": status_id }))
            .await;
        assert!(
            within(60, POLL, || async {
                shown(&dh.ticket(&id).await, "partner_status").as_deref() == Some(canonical)
            })
            .await,
            "timed out: django-helpdesk shows Redmine's {canonical}: {}\n{}",
            dh.ticket(&id).await,
            gw.log()
        );
    }

    // 3. django-helpdesk's staff resolve: Redmine shows it, in its field
    //    (and follows: the status is mirrored).
    dh.follow_up(&id, "", false, Some(3)).await;
    assert!(
        within(60, POLL, || async {
            let i = rm.issue(&issue).await;
            rm_cf(&i, &rm.cf["partner_status"]).as_deref() == Some("resolved")
                && i["status"]["id"] == 3
        })
        .await,
        "timed out: Redmine shows django-helpdesk's resolved: {}\n{}",
        rm.issue(&issue).await,
        gw.log()
    );

    // 4. Quiet rounds: the fields stay, nothing echoed or doubled, and no
    //    note was written where a field holds it.
    eventually("the gateway is idle", 60, || gw.idle()).await;
    let f = dh.followups(&id).await;
    let i = rm.issue(&issue).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t = dh.ticket(&id).await;
    assert_eq!(t["followup_set"].as_array().unwrap().len(), f.len(), "{t}");
    let later = rm.issue(&issue).await;
    assert_eq!(
        journals(&later).len(),
        journals(&i).len(),
        "{later:#}\n{}",
        gw.log()
    );
    assert_eq!(
        shown(&t, "partner_ticket").as_deref(),
        Some(issue.as_str()),
        "{t}"
    );
    // django-helpdesk wrote one follow-up of its own since the hand-over
    // (the resolution), plus none for the partner's fields.
    assert_eq!(f.len(), notes_before + 1, "{f:#?}");
    for text in ["took this over", "is now"] {
        assert!(followups_containing(&f, text).is_empty(), "{f:#?}");
        assert!(notes_containing(&i, text).is_empty(), "{i}");
    }
    assert_eq!(
        f.iter().filter(|f| f["new_status"] == 3).count(),
        1,
        "{f:#?}"
    );
    assert_eq!(
        rm_cf(&i, &rm.cf["partner_ticket"]).as_deref(),
        Some(id.as_str())
    );
    // Redmine's partner status changed once (to resolved), its partner
    // ticket was set once (on the issue's creation, or one change after).
    assert_eq!(rm_cf_changes(&i, &rm.cf["partner_status"]), 1, "{i}");
    assert!(rm_cf_changes(&i, &rm.cf["partner_ticket"]) <= 1, "{i}");
    // Redmine's status changes: the staff's two, and the resolution once.
    let status_changes = journals(&i)
        .iter()
        .flat_map(|j| j["details"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["name"] == "status_id")
        .count();
    assert_eq!(status_changes, 3, "{i}");
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn django_helpdesk_desk_shows_its_redmine_vendors_ticket_and_status() {
    each_side_shows_its_partner(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn django_helpdesk_vendor_shows_its_redmine_desks_ticket_and_status() {
    each_side_shows_its_partner(false).await;
}
