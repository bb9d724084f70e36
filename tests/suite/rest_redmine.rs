//! Live: a sample desk (the service company) linked with a real Redmine 5
//! (the vendor) through the REST connector and its Redmine profile.
//! Redmine is started by scripts/test.sh (scripts/services/redmine.sh),
//! which writes /run/deskbridge-test/redmine.env.

use crate::common::redmine::*;
use crate::common::rest::*;
use crate::common::*;
use deskbridge::event::Status;
use serde_json::json;
use std::time::Duration;

/// How often the test looks at Redmine or the desk while waiting.
const POLL: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread")]
async fn sample_desk_and_redmine_relay_both_ways_under_policy() {
    let Some(rm) = redmine() else { return };
    let service_key = rm.service_key().await;
    let (desk, gw) = desk_and_gateway(RestEndpoint {
        name: "redmine",
        service_account: REDMINE_SERVICE_LOGIN,
        base_url: &rm.url,
        credentials: &service_key,
        credentials_file: "redmine.key",
        project: &rm.project,
        extra: r#"# this installation has no status 99: a change to "waiting" cannot take
statuses = { outbound = { waiting = "99" } }
"#,
    })
    .await;

    // 1. Transfer: the desk's ticket becomes a Redmine issue.
    let subject = format!("Scale shows wrong weight {}", uuid::Uuid::new_v4().simple());
    let t = create_ticket_with_file(&desk, &subject);
    let issue_id = first_some(600, POLL, || rm.find_by_subject(&subject)).await;
    let issue_id = issue_id.unwrap_or_else(|| panic!("no Redmine issue:\n{}", gw.log()));
    let issue = rm.issue(&issue_id).await;
    assert_eq!(issue["subject"], subject.as_str());
    let description = issue["description"].as_str().unwrap();
    assert!(description.contains("Calibration lost"), "{description}");
    assert!(!description.contains("555 0100"), "the phone stays home");
    assert_eq!(
        issue["author"]["name"], "Desk Bridge",
        "written as the service account"
    );
    link_knows(&gw, "the link knows the Redmine issue", &issue_id).await;
    // The ticket's file went with the transfer, byte for byte.
    let ticket_file = [(TICKET_FILE.0.to_string(), TICKET_FILE.1.to_vec())];
    assert_files_landed(&rm.files(&issue_id).await, &ticket_file);

    // 2. A comment for the partner crosses as a public note; an internal one does not.
    comment_for_partner_and_internally(&desk, &t);
    eventually("the partner comment is a Redmine note", 30, || async {
        notes_containing(&rm.issue(&issue_id).await, "spare load cell").len() == 1
    })
    .await;
    let note = notes_containing(&rm.issue(&issue_id).await, "spare load cell").remove(0);
    assert_eq!(note["private_notes"], false, "{note}");
    assert_eq!(note["user"]["name"], "Desk Bridge");
    assert!(note["notes"]
        .as_str()
        .unwrap()
        .contains("Dana (Service Co)"));

    // 2b. Files: the partner comment's files land on its Redmine note, byte
    //     for byte (read back through Redmine's API); the internal note's
    //     file stays home.
    let sent = comment_with_files(&desk, &t);
    eventually("the comment with files is a Redmine note", 30, || async {
        notes_containing(&rm.issue(&issue_id).await, "Calibration report attached").len() == 1
    })
    .await;
    let files = rm.files(&issue_id).await;
    assert_files_landed(&files, &sent);
    let note =
        notes_containing(&rm.issue(&issue_id).await, "Calibration report attached").remove(0);
    let attached = note["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["property"] == "attachment")
        .count();
    assert_eq!(
        attached, 2,
        "the files are on the note's own journal: {note}"
    );

    // 3. A status change from the desk is applied and read back.
    desk.desk.set_status(&t, Status::InProgress, "Dana");
    eventually("Redmine shows In Progress", 30, || async {
        rm.issue(&issue_id).await["status"]["id"] == 2
    })
    .await;

    // 4. Redmine's own users write: a public note crosses (as an internal
    //    note marked with the vendor's name), a private note does not.
    rm.put_issue(
        &issue_id,
        json!({"notes": "Load cell ordered, on site Friday"}),
    )
    .await;
    rm.put_issue(
        &issue_id,
        json!({"notes": "Our cost: 40 EUR", "private_notes": true}),
    )
    .await;
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the Redmine note").await;

    // 4b. A Redmine note with a file: the file reaches the desk byte for byte.
    let vendor_bytes = vendor_file();
    let vendor_name = "Лист калибровки.pdf";
    rm.note_with_file(
        &issue_id,
        "Calibration sheet from the factory",
        vendor_name,
        &vendor_bytes,
    )
    .await;

    // 4c. A file added in Redmine alone (a journal without a note) crosses
    //     as a comment carrying it.
    let alone = b"serial 4711\n".to_vec();
    rm.note_with_file(&issue_id, "", "serial.txt", &alone).await;
    eventually("the file added alone reaches the desk", 30, || async {
        desk.desk.ticket(&t).unwrap().comments.iter().any(|c| {
            c.files
                .iter()
                .any(|(n, b)| n == "serial.txt" && *b == alone)
        })
    })
    .await;
    vendor_file_reaches_desk(
        &desk,
        &gw,
        &t,
        "Calibration sheet from the factory",
        vendor_name,
        &vendor_bytes,
    )
    .await;

    // 5. Redmine's status change reaches the desk.
    rm.put_issue(&issue_id, json!({"status_id": 3})).await;
    desk_shows_resolved(&desk, &t).await;

    // 6. Several polling rounds later: no echo either way, nothing private crossed.
    let journals_before = journals(&rm.issue(&issue_id).await).len();
    let desk_before = DeskBefore::take(&desk, &gw, &t).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let issue = rm.issue(&issue_id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(
        journals(&issue).len(),
        journals_before,
        "Redmine: {issue:#}"
    );
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_eq!(notes_containing(&issue, "spare load cell").len(), 1);
    assert!(notes_containing(&issue, "Premium SLA").is_empty());
    let mut all_files = sent.clone();
    all_files.push((vendor_name.to_string(), vendor_bytes.clone()));
    assert_files_landed(&rm.files(&issue_id).await, &all_files);
    vendor_file_reaches_desk(
        &desk,
        &gw,
        &t,
        "Calibration sheet from the factory",
        vendor_name,
        &vendor_bytes,
    )
    .await;
    assert_desk_after_quiet_rounds(&dt);
    assert!(gw.idle().await);

    // 7. A status Redmine ignores (no status 99) is a dead letter with the reason.
    let error = waiting_dead_letter(&desk, &gw, &t, "redmine").await;
    assert!(
        error.contains("did not apply status 99 (for waiting)")
            && error.contains("still at status 3"),
        "{error}"
    );
    assert_eq!(rm.issue(&issue_id).await["status"]["id"], 3);
}

/// A transfer rule on the priority, with Redmine as the sending side: an
/// issue opened Normal stays home; when the vendor's staff make it
/// Urgent, it goes to the partner once, with its priority and custom
/// field; later priority changes cross as changes, never as a second
/// hand-over (not even when it is Urgent again). In a project of the
/// test's own: parallel tests make issues urgent too.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_the_priority_hands_over_when_redmine_staff_raise_it() {
    let Some(rm) = redmine() else { return };
    let rm = rm.own_project("rule").await;
    let service_key = rm.service_key().await;
    let extra = format!(
        "custom_fields = {{ equipment = \"{}\" }}\n",
        rm.cf["equipment"]
    );
    let (desk, gw) = product_to_desk(
        RestEndpoint {
            name: "redmine",
            service_account: REDMINE_SERVICE_LOGIN,
            base_url: &rm.url,
            credentials: &service_key,
            credentials_file: "redmine.key",
            project: &rm.project,
            extra: &extra,
        },
        r#"allowed_fields = ["description", "priority", "due", "equipment"]"#,
        r#"{ fields = { priority = "urgent" } }"#,
    )
    .await;

    // 1. Opened Normal: read by rounds that began after it was opened, and
    //    not handed over.
    let subject = format!("Scale drifts {}", uuid::Uuid::new_v4().simple());
    let equipment = json!([{"id": rm.cf["equipment"].parse::<u64>().unwrap(),
        "value": "Scale DIGI SM-120"}]);
    let id = rm
        .create(
            &subject,
            "Weighs 20 g heavy.",
            json!({"priority_id": 2, "due_date": "2026-12-20", "custom_fields": equipment}),
        )
        .await;
    rounds_pass(&gw, "redmine", 3).await;
    assert!(desk.desk.tickets().is_empty(), "{}", gw.log());
    assert_eq!(gw.status().await["links"], 0);

    // 2. Made Urgent: handed over, with its priority, due date and equipment.
    rm.put_issue(&id, json!({"priority_id": 4})).await;
    let arrived = within(60, POLL, || async { !desk.desk.tickets().is_empty() }).await;
    assert!(arrived, "not handed over:\n{}", gw.log());
    let dt = desk.desk.tickets().remove(0);
    assert_eq!(dt.subject, subject);
    assert_eq!(dt.priority.as_deref(), Some("urgent"), "{dt:?}");
    assert_eq!(
        dt.due.map(|d| d.date_naive().to_string()).as_deref(),
        Some("2026-12-20"),
        "{dt:?}"
    );
    assert_eq!(
        dt.fields.get("equipment").map(String::as_str),
        Some("Scale DIGI SM-120"),
        "{dt:?}"
    );
    link_knows(&gw, "the link knows the Redmine issue", &id).await;

    // 3. High, then Urgent again: each change crosses, no second hand-over.
    rm.put_issue(&id, json!({"priority_id": 3})).await;
    eventually("the desk follows the priority's change", 60, || async {
        desk.desk.ticket(&dt.id).unwrap().priority.as_deref() == Some("high")
    })
    .await;
    rm.put_issue(&id, json!({"priority_id": 4})).await;
    eventually(
        "the desk follows the priority's change back",
        60,
        || async { desk.desk.ticket(&dt.id).unwrap().priority.as_deref() == Some("urgent") },
    )
    .await;
    rounds_pass(&gw, "redmine", 3).await;
    assert_eq!(desk.desk.tickets().len(), 1, "{}", gw.log());
    let status = gw.status().await;
    assert_eq!(status["links"], 1, "{status}");
    assert_eq!(status["dead_letters"], 0, "{status}");
}

#[test]
fn probe_names_refused_credentials() {
    let Some(rm) = redmine() else { return };
    let said = probe_with_wrong_credentials(RestEndpoint {
        name: "redmine",
        service_account: REDMINE_SERVICE_LOGIN,
        base_url: &rm.url,
        credentials: "0000000000000000000000000000000000000000",
        credentials_file: "redmine.key",
        project: &rm.project,
        extra: "",
    });
    assert!(said.contains("FAIL"), "{said}");
    assert!(said.contains("the credentials are refused"), "{said}");
    assert!(
        said.contains("endpoints.redmine.rest.credentials"),
        "{said}"
    );
}
