//! Live: a Request Tracker 5 service desk escalates to a vendor on
//! Redmine 5, both over the REST connector, as examples/rt-to-redmine.toml
//! does. The daemon is killed with SIGKILL while both sides write; every
//! comment arrives exactly once and nothing echoes back.

use crate::common::redmine::*;
use crate::common::rest::*;
use crate::common::rt::*;
use crate::common::*;
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

/// The file the RT ticket is opened with.
const FIRMWARE_LOG: &[u8] = b"fw 2.1.4 boot ok\ntray 2 sensor timeout\n20 kB of log elided\n";

/// The gateway config of the example, pointed at the test instances.
fn config(dir: &std::path::Path, rt: &Rt, rm: &Redmine, redmine_key: &str) -> String {
    std::fs::write(dir.join("rt.token"), &rt.token).unwrap();
    std::fs::write(dir.join("redmine.key"), redmine_key).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/rt-to-redmine.toml"
    ))
    .unwrap();
    // The example's tables after its [daemon] (the harness writes its own),
    // each endpoint pointed at its test instance.
    let tables = &example[example.find("[parties.").expect("the example has parties")..];
    let at = tables
        .find("[endpoints.redmine]")
        .expect("the example has redmine");
    let (rt_part, rm_part) = tables.split_at(at);
    let file = |name: &str| {
        format!(
            "credentials = {{ file = \"{}\" }}",
            dir.join(name).display()
        )
    };
    let rt_part = rt_part
        .replace(
            "credentials = { env = \"DESKBRIDGE_RT_TOKEN\" }",
            &file("rt.token"),
        )
        .replace("http://127.0.0.1:8081/REST/2.0", &rt.rest)
        .replace(
            "project = \"deskbridge\"",
            &format!("project = \"{}\"", rt.queue),
        )
        .replace(
            "service_account = \"deskbridge\"",
            &format!("service_account = \"{}\"", rt.user),
        );
    let rm_part = rm_part
        .replace(
            "credentials = { env = \"DESKBRIDGE_REDMINE_KEY\" }",
            &file("redmine.key"),
        )
        .replace("http://127.0.0.1:3000", &rm.url)
        .replace(
            "project = \"deskbridge\"",
            &format!("project = \"{}\"", rm.project),
        )
        .replace(
            "service_account = \"deskbridge\"",
            &format!("service_account = \"{REDMINE_SERVICE_LOGIN}\""),
        );
    // The custom fields' ids of the test instances.
    let rt_part = rt_part.replace(
        "custom_fields = { site = \"4\", equipment = \"2\", serial_number = \"3\", partner_ticket = \"5\", partner_status = \"6\" }",
        &format!(
            "custom_fields = {{ site = \"{}\", equipment = \"{}\", serial_number = \"{}\", partner_ticket = \"{}\", partner_status = \"{}\" }}",
            rt.cf["site"], rt.cf["equipment"], rt.cf["serial_number"], rt.cf["partner_ticket"], rt.cf["partner_status"]
        ),
    );
    let rm_part = rm_part.replace(
        "custom_fields = { site = \"1\", equipment = \"2\", partner_ticket = \"4\" }",
        &format!(
            "custom_fields = {{ site = \"{}\", equipment = \"{}\", partner_ticket = \"{}\" }}",
            rm.cf["site"], rm.cf["equipment"], rm.cf["partner_ticket"]
        ),
    );
    assert!(rt_part.contains(&format!("site = \"{}\"", rt.cf["site"])));
    assert!(rm_part.contains(&format!("site = \"{}\"", rm.cf["site"])));
    // Quick rounds for the test.
    format!("{rt_part}{rm_part}").replace("poll_secs = 10", "poll_secs = 1")
}

/// RT's `CustomFields` object: the test instance's ids of these fields.
fn rt_cfs(rt: &Rt, values: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = values
        .iter()
        .map(|(f, v)| (rt.cf[*f].clone(), json!(v)))
        .collect();
    Value::Object(map)
}

/// Changes an RT ticket as its staff would (root).
async fn rt_update(rt: &Rt, ticket: &str, body: Value) {
    let (code, v) = rt
        .call(
            reqwest::Method::PUT,
            &format!("/ticket/{ticket}"),
            Some(body),
        )
        .await;
    assert_eq!(code, 200, "{v}");
}

/// The value of a Redmine issue's custom field.
fn rm_cf(issue: &Value, id: &str) -> Option<String> {
    issue["custom_fields"]
        .as_array()?
        .iter()
        .find(|c| c["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
        .and_then(|c| c["value"].as_str())
        .map(str::to_string)
}

/// The value of an RT ticket's custom field.
fn rt_cf(ticket: &Value, id: &str) -> Option<String> {
    ticket["CustomFields"]
        .as_array()?
        .iter()
        .find(|c| c["id"].as_str() == Some(id))
        .and_then(|c| c["values"][0].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_hand_over_crosses_and_field_changes_cross_both_ways() {
    let (Some(rt), Some(rm)) = (rt(), redmine()) else {
        return;
    };
    let key = rm.service_key().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), &rt, &rm, &key);
    let gw = Gateway::start_with(dir, &conf);
    // check says where each field lands before any ticket is handed over.
    let ok = gw.cli(&["check"]);
    let said = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success(), "{said}");
    assert!(said.contains("transfer rt → redmine:"), "{said}");
    for (field, lands) in [
        ("priority", "a field of its own (priority)"),
        ("due", "a field of its own (due)"),
        (
            "site",
            &format!("a field of its own (custom field {})", rm.cf["site"]),
        ),
        ("serial_number", "the text"),
    ] {
        assert!(
            said.lines()
                .any(|l| l.trim_start().starts_with(field) && l.ends_with(lands)),
            "{field} → {lands}:\n{said}"
        );
    }

    // 1. An RT ticket with priority 80, a due time and custom fields.
    let subject = format!("Scale shows wrong weight {}", uuid::Uuid::new_v4().simple());
    let cfs = rt_cfs(
        &rt,
        &[
            ("site", "Store 12, Leeds"),
            ("equipment", "Scale DIGI SM-120"),
            ("serial_number", "SN-4471"),
        ],
    );
    let (code, v) = rt
        .call(
            reqwest::Method::POST,
            "/ticket",
            Some(json!({"Queue": rt.queue, "Subject": subject,
                "Content": "Weighs 20 g heavy.", "ContentType": "text/plain",
                "Priority": 80, "Due": "2026-12-20T15:00:00Z", "CustomFields": cfs})),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let ticket = v["id"]
        .as_str()
        .map_or_else(|| v["id"].to_string(), String::from);
    let issue = first_some(300, POLL, || rm.find_by_subject(&subject))
        .await
        .unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
    // Read back through Redmine's own API.
    let i = rm.issue(&issue).await;
    assert_eq!(i["priority"]["name"], "High", "{i}");
    assert_eq!(i["due_date"], "2026-12-20", "{i}");
    assert_eq!(
        rm_cf(&i, &rm.cf["site"]).as_deref(),
        Some("Store 12, Leeds"),
        "{i}"
    );
    assert_eq!(
        rm_cf(&i, &rm.cf["equipment"]).as_deref(),
        Some("Scale DIGI SM-120"),
        "{i}"
    );
    // No place for the serial number in Redmine: in the text, not dropped.
    let description = i["description"].as_str().unwrap_or_default();
    assert!(description.contains("Weighs 20 g heavy."), "{description}");
    assert!(
        description.contains("Serial number: SN-4471"),
        "{description}"
    );

    // 1b. Each shows the other's ticket id; the desk sees the vendor's
    // status as it changes (a custom field in RT), the vendor the desk's
    // (a private note in Redmine: no custom field for it there).
    assert!(
        within(60, POLL, || async {
            rt_cf(&rt.ticket(&ticket).await, &rt.cf["partner_ticket"]).as_deref()
                == Some(issue.as_str())
        })
        .await,
        "timed out: RT shows the Redmine issue's id: {}\n{}",
        rt.ticket(&ticket).await,
        gw.log()
    );
    assert_eq!(
        rm_cf(&i, &rm.cf["partner_ticket"]).as_deref(),
        Some(ticket.as_str()),
        "{i}"
    );
    rm.put_issue(&issue, json!({"status_id": 2})).await;
    assert!(
        within(60, POLL, || async {
            let t = rt.ticket(&ticket).await;
            rt_cf(&t, &rt.cf["partner_status"]).as_deref() == Some("in_progress")
                && t["Status"] == "open"
        })
        .await,
        "timed out: RT shows the vendor's status: {}\n{}",
        rt.ticket(&ticket).await,
        gw.log()
    );
    rt.set_status(&ticket, "stalled").await;
    assert!(
        within(60, POLL, || async {
            let i = rm.issue(&issue).await;
            notes_containing(&i, "is now waiting").len() == 1 && i["status"]["id"] == 4
        })
        .await,
        "timed out: Redmine notes the desk's status: {}\n{}",
        rm.issue(&issue).await,
        gw.log()
    );

    // 2. RT changes priority, due time and site: Redmine follows.
    let cfs = rt_cfs(&rt, &[("site", "Store 14, York")]);
    rt_update(
        &rt,
        &ticket,
        json!({"Priority": 100, "Due": "2026-12-18T09:00:00Z", "CustomFields": cfs}),
    )
    .await;
    assert!(
        within(120, POLL, || async {
            let i = rm.issue(&issue).await;
            i["priority"]["name"] == "Urgent"
                && i["due_date"] == "2026-12-18"
                && rm_cf(&i, &rm.cf["site"]).as_deref() == Some("Store 14, York")
        })
        .await,
        "timed out: Redmine follows RT's changes: {}\n{}",
        rm.issue(&issue).await,
        gw.log()
    );
    // A change with no place in Redmine is a note there.
    let cfs = rt_cfs(&rt, &[("serial_number", "SN-9000")]);
    rt_update(&rt, &ticket, json!({ "CustomFields": cfs })).await;
    assert!(
        within(120, POLL, || async {
            let i = rm.issue(&issue).await;
            notes_containing(&i, "changed Serial number: SN-9000").len() == 1
        })
        .await,
        "timed out: the serial number's change is a note in Redmine:\n{}",
        gw.log()
    );

    // 3. The vendor lowers the priority and moves the due date: RT follows,
    // and nothing echoes back and forth.
    rm.put_issue(&issue, json!({"priority_id": 2, "due_date": "2026-12-22"}))
        .await;
    assert!(
        within(120, POLL, || async {
            let t = rt.ticket(&ticket).await;
            t["Priority"] == "50" && t["Due"] == "2026-12-22T00:00:00Z"
        })
        .await,
        "timed out: RT follows Redmine's changes: {}\n{}",
        rt.ticket(&ticket).await,
        gw.log()
    );
    // Several rounds later, still as the vendor left them on both sides.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t = rt.ticket(&ticket).await;
    assert_eq!(t["Priority"], "50", "{t}");
    assert_eq!(rt_cf(&t, &rt.cf["site"]).as_deref(), Some("Store 14, York"));
    let i = rm.issue(&issue).await;
    assert_eq!(i["priority"]["name"], "Normal", "{i}");
    assert_eq!(i["due_date"], "2026-12-22", "{i}");
    // Each change crossed once: one journal per priority change in Redmine.
    let priority_changes = journals(&i)
        .iter()
        .flat_map(|j| j["details"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["name"] == "priority_id")
        .count();
    assert_eq!(priority_changes, 2, "{i}");
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}

fn count_in_rt(history: &[Value], kind: &str, text: &str) -> usize {
    texts_containing(history, kind, text).len()
}

#[tokio::test(flavor = "multi_thread")]
async fn rt_desk_escalates_to_redmine_vendor_through_sigkills() {
    let (Some(rt), Some(rm)) = (rt(), redmine()) else {
        return;
    };
    let key = rm.service_key().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), &rt, &rm, &key);
    let mut gw = Gateway::start_with(dir, &conf);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // 1. A ticket opened in RT becomes a Redmine issue (the transfer rule).
    let subject = format!("Printer jams on tray 2 {}", uuid::Uuid::new_v4().simple());
    let (code, v) = rt
        .call(
            reqwest::Method::POST,
            "/ticket",
            Some(json!({"Queue": rt.queue, "Subject": subject,
                "Content": "Jams every 20 pages since the firmware update.", "ContentType": "text/plain",
                "Attachments": [{"FileName": "firmware-log.txt", "FileType": "text/plain",
                    "FileContent": base64::engine::general_purpose::STANDARD.encode(FIRMWARE_LOG)}]})),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let ticket = v["id"]
        .as_str()
        .map_or_else(|| v["id"].to_string(), String::from);
    let issue = first_some(300, POLL, || rm.find_by_subject(&subject))
        .await
        .unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
    let description = rm.issue(&issue).await["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(description.contains("Jams every 20 pages"), "{description}");
    assert!(
        !description.contains("20 kB of log"),
        "the text file is not the description: {description}"
    );
    let log = [("firmware-log.txt".to_string(), FIRMWARE_LOG.to_vec())];
    assert_files_landed(&rm.files(&issue).await, &log);

    // 2. RT's reply to the requester crosses (the desk shares the client
    // conversation); its internal comment does not.
    rt.write(&ticket, "correspond", "We are escalating to the vendor")
        .await;
    rt.write(&ticket, "comment", "Client is on the gold contract")
        .await;
    assert!(
        within(60, POLL, || async {
            notes_containing(&rm.issue(&issue).await, "escalating to the vendor").len() == 1
        })
        .await,
        "timed out: the correspond is a Redmine note:\n{}",
        gw.log()
    );

    // 3. Both sides write while the daemon is killed.
    // Some carry files: each must arrive once, byte for byte.
    let file = |side: &str, i: usize| {
        let bytes: Vec<u8> = (0..150_000u32)
            .map(|n| (n.wrapping_mul(31).wrapping_add(i as u32 * 7)) as u8)
            .collect();
        (format!("{side} report №{i}.bin"), bytes)
    };
    let mut desk_files = Vec::new();
    let mut vendor_files = Vec::new();
    for i in 0..6 {
        let desk_text = format!("desk update {i} of 6");
        let vendor_text = format!("vendor update {i} of 6");
        if i % 2 == 1 {
            let (name, bytes) = file("desk", i);
            rt.write_with_file(&ticket, "correspond", &desk_text, &name, &bytes)
                .await;
            desk_files.push((name, bytes));
            let (name, bytes) = file("vendor", i);
            rm.note_with_file(&issue, &vendor_text, &name, &bytes).await;
            vendor_files.push((name, bytes));
        } else {
            rt.write(&ticket, "correspond", &desk_text).await;
            rm.put_issue(&issue, json!({ "notes": vendor_text })).await;
        }
        if i == 2 {
            gw.kill9();
            gw.spawn();
        }
    }
    // The vendor's private note stays in Redmine.
    rm.put_issue(
        &issue,
        json!({"notes": "our supplier is late again", "private_notes": true}),
    )
    .await;
    // 4. The vendor resolves: RT shows it.
    rm.put_issue(&issue, json!({ "status_id": 3 })).await;
    assert!(
        within(240, POLL, || async {
            rt.ticket(&ticket).await["Status"] == "resolved"
        })
        .await,
        "timed out: RT shows the vendor's resolution:\n{}",
        gw.log()
    );
    assert!(
        within(240, POLL, || async {
            let notes = rm.issue(&issue).await;
            let h = rt.history(&ticket).await;
            (0..6).all(|i| {
                notes_containing(&notes, &format!("desk update {i} of 6")).len() == 1
                    && count_in_rt(&h, "Comment", &format!("vendor update {i} of 6")) == 1
            })
        })
        .await,
        "timed out: every update crossed:\n{}",
        gw.log()
    );

    // 5. Several polling rounds later: nothing doubled, nothing echoed,
    // nothing private crossed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let notes = rm.issue(&issue).await;
    let h = rt.history(&ticket).await;
    for i in 0..6 {
        let desk = format!("desk update {i} of 6");
        let vendor = format!("vendor update {i} of 6");
        assert_eq!(
            notes_containing(&notes, &desk).len(),
            1,
            "{desk} in Redmine"
        );
        assert_eq!(count_in_rt(&h, "Comment", &vendor), 1, "{vendor} in RT");
        // No echo: what deskbridge wrote is not written back where it came from.
        assert_eq!(
            count_in_rt(&h, "Correspond", &desk),
            1,
            "{desk} echoed in RT"
        );
        assert_eq!(
            notes_containing(&notes, &vendor).len(),
            1,
            "{vendor} echoed in Redmine"
        );
    }
    assert!(
        notes_containing(&notes, "gold contract").is_empty(),
        "RT's internal comment leaked"
    );
    assert_eq!(
        count_in_rt(&h, "Comment", "supplier is late"),
        0,
        "Redmine's private note leaked"
    );
    assert_eq!(
        count_in_rt(&h, "Correspond", "vendor update"),
        0,
        "a vendor note reached the requester"
    );
    // Every file once on each side: crossed, not doubled by the kill, not
    // echoed back.
    let in_rm = rm.files(&issue).await;
    let in_rt = rt.files(&ticket).await;
    assert_files_landed(&in_rm, &desk_files);
    assert_files_landed(&in_rm, &vendor_files);
    assert_files_landed(&in_rt, &desk_files);
    assert_files_landed(&in_rt, &vendor_files);
    assert_files_landed(&in_rm, &log);
    assert_files_landed(&in_rt, &log);
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}

/// The `[endpoints.rt]` table of a service company on RT, in the middle
/// of a chain: its custom fields show the vendor's ticket and status and,
/// apart, the client's.
fn rt_endpoint(dir: &std::path::Path, rt: &Rt, policy: &str) -> String {
    std::fs::write(dir.join("rt.token"), &rt.token).unwrap();
    let cf = |f: &str| format!("{f} = \"{}\"", rt.cf[f]);
    format!(
        r#"
[endpoints.rt]
party = "acme"
kind = "rest"
service_account = "{user}"
[endpoints.rt.rest]
profile = "rt"
base_url = "{base}"
credentials = {{ file = "{token}" }}
project = "{queue}"
poll_secs = 1
custom_fields = {{ {fields} }}
[endpoints.rt.policy]
{policy}
"#,
        user = rt.user,
        base = rt.rest,
        token = dir.join("rt.token").display(),
        queue = rt.queue,
        fields = [
            "site",
            "equipment",
            "partner_ticket",
            "partner_status",
            "upstream_ticket",
            "upstream_status"
        ]
        .map(cf)
        .join(", "),
    )
}

/// The `[endpoints.redmine]` table of a vendor on Redmine, the same way.
fn redmine_endpoint(dir: &std::path::Path, rm: &Redmine, key: &str, policy: &str) -> String {
    std::fs::write(dir.join("redmine.key"), key).unwrap();
    let cf = |f: &str| format!("{f} = \"{}\"", rm.cf[f]);
    format!(
        r#"
[endpoints.redmine]
party = "printco"
kind = "rest"
service_account = "{REDMINE_SERVICE_LOGIN}"
[endpoints.redmine.rest]
profile = "redmine"
base_url = "{base}"
credentials = {{ file = "{key}" }}
project = "{project}"
poll_secs = 1
custom_fields = {{ {fields} }}
[endpoints.redmine.policy]
{policy}
"#,
        base = rm.url,
        key = dir.join("redmine.key").display(),
        project = rm.project,
        fields = [
            "site",
            "equipment",
            "partner_ticket",
            "partner_status",
            "upstream_ticket",
            "upstream_status"
        ]
        .map(cf)
        .join(", "),
    )
}

/// What crosses between these companies: the ticket's text, priority,
/// due time, files, site and equipment; not the client's contact.
const HAND_OVER: &str =
    r#"allowed_fields = ["description", "priority", "due", "attachments", "site", "equipment"]"#;

/// A four-level chain through real connectors: a retail chain's desk
/// (webhook) → a service company on Request Tracker → a vendor on Redmine
/// → a regional partner with only a mailbox. Each company's view is read
/// in its own system: its partner's ticket and status (and, in the
/// middle, its client's apart), the deadline, the statuses climbing hop by
/// hop; and what it must not see: internal notes, the client's
/// conversation, the client's contact. The daemon is SIGKILLed while the
/// partner's answer is on its way; nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread")]
async fn a_four_level_chain_through_webhook_rt_redmine_and_mail() {
    use crate::common::mail::MailServer;
    use deskbridge::event::{Audience, Status, Ticket};
    let (Some(rt), Some(rm)) = (rt(), redmine()) else {
        return;
    };
    let key = rm.service_key().await;
    let mail = MailServer::start();
    let retail = Party::start("retail").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        r#"
[parties.chain]
name = "Fresh Foods"
role = "client"
[parties.acme]
name = "Acme Service"
role = "service_company"
[parties.printco]
name = "PrintCo"
role = "vendor"
[parties.north]
name = "North Field Services"
role = "subcontractor"
{retail}{rt_ep}{rm_ep}{mail_ep}
[[transfers]]
from = "retail"
to = "rt"
"#,
        retail = retail.toml(dir.path(), "chain", HAND_OVER),
        // The vendor does not see Acme's conversation with its client.
        rt_ep = rt_endpoint(dir.path(), &rt, HAND_OVER),
        // PrintCo's public notes go to its regional partner too; the
        // partner's answers land as private notes (PrintCo checks first).
        rm_ep = redmine_endpoint(
            dir.path(),
            &rm,
            &key,
            &format!("{HAND_OVER}\nshare_client_conversation = true")
        ),
        mail_ep = mail
            .endpoint(
                dir.path(),
                "regional",
                "north",
                "agent",
                "partner = [\"North Field <vendor@localhost>\"]",
                "",
            )
            .replace("Acme Desk", "PrintCo Dispatch"),
    );
    let mut gw = Gateway::start_with(dir, &conf);
    retail.connect(&gw);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );

    // 1. A store's till printer fails: the retail chain's desk opens a
    // ticket with a deadline, and the store manager's name and phone.
    let subject = format!("Till 3 printer dead {}", uuid::Uuid::new_v4().simple());
    let due = "2026-12-20T15:00:00Z";
    const PHONE: &str = "+44 7700 900123";
    const MANAGER: &str = "Mary Jonesworth";
    let r = retail.desk.open(
        Ticket {
            subject: subject.clone(),
            description: "Receipt printer on till 3 prints blank receipts.".into(),
            priority: Some("high".into()),
            due: Some(due.parse().unwrap()),
            fields: [
                ("site", "Store 12, Leeds"),
                ("equipment", "Epson TM-T88VI"),
                ("client_phone", PHONE),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
            ..Ticket::default()
        },
        MANAGER,
    );
    retail.desk.comment(
        &r,
        "Store 12 is on probation, watch the costs",
        Audience::Internal,
        MANAGER,
        &[],
    );
    let svc = first_some(300, POLL, || rt.find_by_subject(&subject))
        .await
        .unwrap_or_else(|| panic!("no RT ticket:\n{}", gw.log()));
    let t = rt.ticket(&svc).await;
    assert_eq!(t["Due"], due, "{t}");
    assert_eq!(t["Priority"], "80", "high, on RT's scale: {t}");
    assert_eq!(
        rt_cf(&t, &rt.cf["site"]).as_deref(),
        Some("Store 12, Leeds")
    );
    assert_eq!(
        rt_cf(&t, &rt.cf["upstream_ticket"]).as_deref(),
        Some(r.as_str()),
        "RT shows the client's ticket: {t}"
    );
    eventually("the retail desk shows Acme's ticket", 60, || async {
        retail.desk.ticket(&r).unwrap().partner == Some(("Acme Service".into(), Some(svc.clone())))
    })
    .await;

    // 2. Acme answers its client, notes something for itself, and hands
    // the ticket on to the vendor.
    rt.write(&svc, "correspond", "A technician is on the way")
        .await;
    rt.write(&svc, "comment", "Gold contract: bill at the premium rate")
        .await;
    let hand_on = |from: String, to: &'static str| {
        let gw = &gw;
        async move {
            // The poller must have seen the ticket deskbridge created.
            for _ in 0..300 {
                let out = gw.cli(&["transfer", "--from", &from, "--to", to]);
                if out.status.success() {
                    return;
                }
                let err = String::from_utf8_lossy(&out.stderr).to_string();
                assert!(err.contains("has not seen"), "{err}");
                tokio::time::sleep(POLL).await;
            }
            panic!("{from} never seen:\n{}", gw.log());
        }
    };
    hand_on(format!("rt:{svc}"), "redmine").await;
    let vendor = first_some(300, POLL, || rm.find_by_subject(&subject))
        .await
        .unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
    let i = rm.issue(&vendor).await;
    assert_eq!(i["priority"]["name"], "High", "{i}");
    assert_eq!(i["due_date"], "2026-12-20", "{i}");
    assert_eq!(
        rm_cf(&i, &rm.cf["equipment"]).as_deref(),
        Some("Epson TM-T88VI")
    );
    assert_eq!(
        rm_cf(&i, &rm.cf["upstream_ticket"]).as_deref(),
        Some(svc.as_str()),
        "Redmine shows Acme's ticket: {i}"
    );
    assert!(
        within(60, POLL, || async {
            let t = rt.ticket(&svc).await;
            rt_cf(&t, &rt.cf["partner_ticket"]).as_deref() == Some(vendor.as_str())
                && rt_cf(&t, &rt.cf["upstream_ticket"]).as_deref() == Some(r.as_str())
        })
        .await,
        "timed out: RT shows the vendor's ticket and still the client's: {}\n{}",
        rt.ticket(&svc).await,
        gw.log()
    );

    // 3. PrintCo notes for itself, tells Acme, and hands the job on to
    // its regional partner, who has only a mailbox.
    rm.put_issue(
        &vendor,
        json!({"notes": "Supplier margin on fuser kits is 40%", "private_notes": true}),
    )
    .await;
    rm.put_issue(&vendor, json!({"notes": "Parts ordered, a partner visits"}))
        .await;
    // (Once Acme has it: a note written before the hand-over is not the
    // regional partner's business.)
    assert!(
        within(60, POLL, || async {
            count_in_rt(&rt.history(&svc).await, "Comment", "Parts ordered") == 1
        })
        .await,
        "timed out: PrintCo's note reaches Acme:\n{}",
        gw.log()
    );
    hand_on(format!("redmine:{vendor}"), "regional").await;
    eventually("the job is mailed to the regional partner", 60, || async {
        !mail.mails("vendor").is_empty()
    })
    .await;
    let (first, _, _) = mail.mails("vendor").remove(0);
    let token = first.subject[1..first.subject.find(']').unwrap()].to_string();
    assert_eq!(first.subject, format!("[{token}] {subject}"));
    for want in [
        "prints blank receipts",
        "Store 12, Leeds",
        "Epson TM-T88VI",
        "2026-12-20",
    ] {
        assert!(first.text.contains(want), "{want}: {}", first.text);
    }
    // The companies' texts, not deskbridge's bookkeeping in them.
    assert!(!first.text.contains("[deskbridge:"), "{}", first.text);
    assert!(
        within(60, POLL, || async {
            let i = rm.issue(&vendor).await;
            rm_cf(&i, &rm.cf["partner_ticket"]).as_deref() == Some(token.as_str())
                && rm_cf(&i, &rm.cf["upstream_ticket"]).as_deref() == Some(svc.as_str())
        })
        .await,
        "timed out: Redmine shows the partner's ticket: {}\n{}",
        rm.issue(&vendor).await,
        gw.log()
    );
    // PrintCo's next public note goes to the partner, by mail.
    rm.put_issue(&vendor, json!({"notes": "Bring fuser kit FK-200"}))
        .await;
    eventually("PrintCo's note is mailed", 60, || async {
        mail.mails("vendor").len() == 2
    })
    .await;

    // 4. The partner answers and resolves while the daemon is killed.
    gw.kill9();
    let reply = format!(
        "From: North Field <vendor@localhost>\nTo: agent@localhost\nSubject: Re: [{token}] {subject}\nDate: {date}\nMessage-ID: <north-1@localhost>\nIn-Reply-To: <{answers}>\nReferences: <{answers}>\n\nFuser replaced, 200 receipts printed fine.\n#status resolved\n",
        date = chrono::Utc::now().to_rfc2822(),
        answers = first.message_id,
    );
    mail.send("vendor@localhost", "agent@localhost", &reply)
        .await;
    gw.spawn();

    // 5. The resolution climbs hop by hop: PrintCo, Acme, the retail chain;
    // each shows its partner's status.
    assert!(
        within(120, POLL, || async {
            let i = rm.issue(&vendor).await;
            i["status"]["id"] == 3
                && rm_cf(&i, &rm.cf["partner_status"]).as_deref() == Some("resolved")
        })
        .await,
        "timed out: Redmine resolved: {}\n{}",
        rm.issue(&vendor).await,
        gw.log()
    );
    assert!(
        within(120, POLL, || async {
            let t = rt.ticket(&svc).await;
            t["Status"] == "resolved"
                && rt_cf(&t, &rt.cf["partner_status"]).as_deref() == Some("resolved")
        })
        .await,
        "timed out: RT resolved: {}\n{}",
        rt.ticket(&svc).await,
        gw.log()
    );
    eventually("the retail desk resolved", 120, || async {
        let t = retail.desk.ticket(&r).unwrap();
        t.status == Status::Resolved && t.partner_status.as_deref() == Some("resolved")
    })
    .await;

    // 6. The retail chain confirms and closes: down the chain, to the
    // partner's mailbox; the middle companies see their client's status.
    retail.desk.set_status(&r, Status::Closed, MANAGER);
    assert!(
        within(120, POLL, || async { mail.mails("vendor").len() == 3 }).await,
        "timed out: the closing is mailed to the partner: {}\n{}\n{}",
        rt.ticket(&svc).await,
        rm.issue(&vendor).await,
        gw.log()
    );
    let texts: Vec<String> = mail.mails("vendor").into_iter().map(|m| m.0.text).collect();
    assert!(
        texts[2].contains("set the ticket to: closed"),
        "{texts:#?}\n{}",
        gw.log()
    );
    assert!(
        within(60, POLL, || async {
            let i = rm.issue(&vendor).await;
            let t = rt.ticket(&svc).await;
            i["status"]["id"] == 5
                && rm_cf(&i, &rm.cf["upstream_status"]).as_deref() == Some("closed")
                && rt_cf(&t, &rt.cf["upstream_status"]).as_deref() == Some("closed")
        })
        .await,
        "timed out: Redmine closed, both show their client's status: {}\n{}\n{}",
        rm.issue(&vendor).await,
        rt.ticket(&svc).await,
        gw.log()
    );

    // 7. Some rounds later: each company's view, in its own system.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retail_t = retail.desk.ticket(&r).unwrap();
    let retail_seen: Vec<&str> = retail_t
        .comments
        .iter()
        .filter(|c| c.event.is_some())
        .map(|c| c.body.as_str())
        .collect();
    assert_eq!(
        retail_seen
            .iter()
            .filter(|b| b.contains("A technician is on the way"))
            .count(),
        1,
        "{retail_seen:?}"
    );
    let rt_history = rt.history(&svc).await;
    let rt_all = format!(
        "{}{}",
        rt.ticket(&svc).await,
        serde_json::to_string(&rt_history).unwrap()
    );
    let rm_all = rm.issue(&vendor).await.to_string();
    let mails: Vec<String> = mail.mails("vendor").into_iter().map(|m| m.1).collect();
    assert_eq!(mails.len(), 3, "nothing mailed twice");
    // The vendor's notes reach Acme once, as its internal comments.
    assert_eq!(count_in_rt(&rt_history, "Comment", "Parts ordered"), 1);
    assert_eq!(count_in_rt(&rt_history, "Comment", "fuser kit FK-200"), 1);
    // The partner's answer lands once at PrintCo, privately, and climbs no
    // further (PrintCo checks the work first).
    let answer = notes_containing(&rm.issue(&vendor).await, "Fuser replaced");
    assert_eq!(answer.len(), 1, "{rm_all}");
    assert_eq!(answer[0]["private_notes"], true, "{rm_all}");
    for (who, seen, not) in [
        (
            "the retail chain",
            retail_seen.join("\n"),
            &[
                "Gold contract",
                "Parts ordered",
                "Supplier margin",
                "Fuser replaced",
                "FK-200",
            ][..],
        ),
        (
            "Acme (RT)",
            rt_all.clone(),
            &[
                PHONE,
                MANAGER,
                "on probation",
                "Supplier margin",
                "Fuser replaced",
            ][..],
        ),
        (
            "PrintCo (Redmine)",
            rm_all.clone(),
            &[
                PHONE,
                MANAGER,
                "on probation",
                "Gold contract",
                "technician is on the way",
            ][..],
        ),
        (
            "North Field (mail)",
            mails.join("\n"),
            &[
                PHONE,
                MANAGER,
                "on probation",
                "Gold contract",
                "technician is on the way",
                "Supplier margin",
                "Parts ordered",
            ][..],
        ),
    ] {
        for secret in not {
            assert!(!seen.contains(secret), "{who} sees {secret:?}:\n{seen}");
        }
    }
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}\n{}", gw.log());
    let links = gw.get("/links").await;
    assert_eq!(links.as_array().map(Vec::len), Some(3), "{links}");
}
