//! Live: a sample desk (the service company) linked with a real Request
//! Tracker 5 (the vendor) through the REST connector and its RT profile.
//! RT is started by scripts/test.sh (scripts/services/rt.sh), which writes
//! /run/deskbridge-test/rt.env.

use crate::common::rest::*;
use crate::common::rt::*;
use crate::common::*;
use std::time::Duration;

/// How often the test looks at RT or the desk while waiting.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread")]
async fn sample_desk_and_rt_relay_both_ways_under_policy() {
    let Some(rt) = rt() else { return };
    let (desk, gw) = desk_and_gateway(RestEndpoint {
        name: "rt",
        service_account: &rt.user,
        base_url: &rt.rest,
        credentials: &rt.token,
        credentials_file: "rt.token",
        project: &rt.queue,
        extra: r#"# RT's default lifecycle has no status "nosuch": a change to "waiting" cannot take
statuses = { outbound = { waiting = "nosuch" } }
"#,
    })
    .await;

    // 1. Transfer: the desk's ticket becomes an RT ticket.
    let subject = format!(
        "Scale shows 'wrong' weight {}",
        uuid::Uuid::new_v4().simple()
    );
    let t = create_ticket_with_file(&desk, &subject);
    let ticket_id = first_some(300, POLL, || rt.find_by_subject(&subject)).await;
    let id = ticket_id.unwrap_or_else(|| panic!("no RT ticket:\n{}", gw.log()));
    let ticket = rt.ticket(&id).await;
    assert_eq!(ticket["Subject"], subject.as_str());
    assert_eq!(
        ticket["Creator"]["id"],
        rt.user.as_str(),
        "written as the service account"
    );
    let history = rt.history(&id).await;
    let created = texts_containing(&history, "Create", "Calibration lost");
    assert_eq!(created.len(), 1, "{history:#?}");
    let description = created[0]["Content"].as_str().unwrap();
    assert!(!description.contains("555 0100"), "the phone stays home");
    assert!(description.contains("[deskbridge:"), "{description}");
    link_knows(&gw, "the link knows the RT ticket", &id).await;
    // The ticket's file went with the transfer, byte for byte.
    let ticket_file = [(TICKET_FILE.0.to_string(), TICKET_FILE.1.to_vec())];
    assert_files_landed(&rt.files(&id).await, &ticket_file);

    // 2. A comment for the partner is a correspond; an internal one does not cross.
    comment_for_partner_and_internally(&desk, &t);
    eventually("the partner comment is an RT correspond", 30, || async {
        texts_containing(&rt.history(&id).await, "Correspond", "spare load cell").len() == 1
    })
    .await;
    let reply = texts_containing(&rt.history(&id).await, "Correspond", "spare load cell").remove(0);
    assert_eq!(reply["Creator"]["id"], rt.user.as_str());
    assert!(reply["Content"]
        .as_str()
        .unwrap()
        .contains("Dana (Service Co)"));

    // 2b. Files: the partner comment's files land on its correspond, byte
    //     for byte (read back through REST2); the internal note's file
    //     stays home.
    let sent = comment_with_files(&desk, &t);
    eventually("the comment with files is an RT correspond", 30, || async {
        texts_containing(
            &rt.history(&id).await,
            "Correspond",
            "Calibration report attached",
        )
        .len()
            == 1
    })
    .await;
    assert_files_landed(&rt.files(&id).await, &sent);

    // 3. RT's own users write: a correspond crosses (as an internal note
    //    marked with the vendor's name), a comment does not.
    rt.write(&id, "correspond", "Load cell ordered, on site Friday")
        .await;
    rt.write(&id, "comment", "Our cost: 40 EUR").await;
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the RT correspond").await;

    // 3b. A correspond with a file: the file reaches the desk byte for
    //     byte; a comment's file does not.
    let vendor_bytes = vendor_file();
    let vendor_name = "Kalibrierprotokoll Wägezelle.pdf";
    rt.write_with_file(
        &id,
        "correspond",
        "Calibration sheet from the factory",
        vendor_name,
        &vendor_bytes,
    )
    .await;
    rt.write_with_file(
        &id,
        "comment",
        "Our purchase order",
        "po-internal.pdf",
        b"PO 4711",
    )
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

    // 4. RT's status change reaches the desk.
    rt.set_status(&id, "resolved").await;
    desk_shows_resolved(&desk, &t).await;

    // 5. Several polling rounds later: no echo either way, nothing private crossed.
    let history_before = rt.history(&id).await.len();
    let desk_before = DeskBefore::take(&desk, &gw, &t).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let history = rt.history(&id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(history.len(), history_before, "RT: {history:#?}");
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_eq!(
        texts_containing(&history, "Correspond", "spare load cell").len(),
        1
    );
    assert!(history
        .iter()
        .all(|h| !h["Content"].as_str().unwrap_or("").contains("Premium SLA")));
    assert_files_landed(&rt.files(&id).await, &sent);
    vendor_file_reaches_desk(
        &desk,
        &gw,
        &t,
        "Calibration sheet from the factory",
        vendor_name,
        &vendor_bytes,
    )
    .await;
    assert!(
        !desk.desk.render(&t).contains("po-internal"),
        "{}",
        desk.desk.render(&t)
    );
    assert_desk_after_quiet_rounds(&dt);
    assert!(gw.idle().await);

    // 6. A status RT refuses (answering 200) is a dead letter with the reason.
    let error = waiting_dead_letter(&desk, &gw, &t, "rt").await;
    assert!(
        error.contains("did not apply status nosuch (for waiting)")
            && error.contains("still at status resolved"),
        "{error}"
    );
    assert_eq!(rt.ticket(&id).await["Status"], "resolved");
}

/// A transfer rule on a field, with RT as the sending side: a ticket
/// opened without the field stays home; when RT's staff set the custom
/// field the rule names, the ticket goes to the partner once, the field's
/// value with it; later changes of the field cross as changes, never as a
/// second hand-over (not even when it takes the rule's value again).
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_a_custom_field_hands_over_when_rt_staff_set_it() {
    let Some(rt) = rt() else { return };
    // The test's own value: tickets of parallel tests in the shared queue
    // (some with equipment "Scale DIGI SM-120") never meet the rule.
    let scale = format!(
        "Scale DIGI SM-120 #{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let extra = format!(
        "custom_fields = {{ equipment = \"{}\" }}\n",
        rt.cf["equipment"]
    );
    let (desk, gw) = product_to_desk(
        RestEndpoint {
            name: "rt",
            service_account: &rt.user,
            base_url: &rt.rest,
            credentials: &rt.token,
            credentials_file: "rt.token",
            project: &rt.queue,
            extra: &extra,
        },
        r#"allowed_fields = ["description", "priority", "equipment"]"#,
        &format!("{{ fields = {{ equipment = \"{scale}\" }} }}"),
    )
    .await;

    // 1. Opened without the field: read by rounds that began after it was
    //    opened, and not handed over.
    let subject = format!("Scale drifts {}", uuid::Uuid::new_v4().simple());
    let id = rt
        .create(
            &subject,
            "Weighs 20 g heavy.",
            serde_json::json!({"Priority": 80}),
        )
        .await;
    rounds_pass(&gw, "rt", 3).await;
    assert!(desk.desk.tickets().is_empty(), "{}", gw.log());
    assert_eq!(gw.status().await["links"], 0);

    // 2. RT's staff set the equipment: handed over, the value with it.
    rt.set_cfs(&id, &[("equipment", &scale)]).await;
    let arrived = within(60, POLL, || async { !desk.desk.tickets().is_empty() }).await;
    assert!(arrived, "not handed over:\n{}", gw.log());
    let dt = desk.desk.tickets().remove(0);
    assert_eq!(dt.subject, subject);
    assert!(dt.description.contains("Weighs 20 g heavy."), "{dt:?}");
    assert_eq!(dt.fields.get("equipment"), Some(&scale), "{dt:?}");
    assert_eq!(dt.priority.as_deref(), Some("high"), "{dt:?}");
    link_knows(&gw, "the link knows the RT ticket", &id).await;

    // 3. Another value, then the rule's again: each change crosses, the
    //    ticket is not handed over a second time.
    rt.set_cfs(&id, &[("equipment", "Scale DIGI SM-300")]).await;
    eventually("the desk follows the equipment's change", 60, || async {
        desk.desk.ticket(&dt.id).unwrap().fields.get("equipment")
            == Some(&"Scale DIGI SM-300".to_string())
    })
    .await;
    rt.set_cfs(&id, &[("equipment", &scale)]).await;
    eventually(
        "the desk follows the equipment's change back",
        60,
        || async { desk.desk.ticket(&dt.id).unwrap().fields.get("equipment") == Some(&scale) },
    )
    .await;
    rounds_pass(&gw, "rt", 3).await;
    assert_eq!(desk.desk.tickets().len(), 1, "{}", gw.log());
    let status = gw.status().await;
    assert_eq!(status["links"], 1, "{status}");
    assert_eq!(status["dead_letters"], 0, "{status}");
}

#[test]
fn probe_names_refused_credentials() {
    let Some(rt) = rt() else { return };
    let said = probe_with_wrong_credentials(RestEndpoint {
        name: "rt",
        service_account: &rt.user,
        base_url: &rt.rest,
        credentials: "1-14-0123456789abcdef0123456789abcdef",
        credentials_file: "rt.token",
        project: &rt.queue,
        extra: "",
    });
    assert!(said.contains("FAIL"), "{said}");
    assert!(said.contains("the credentials are refused"), "{said}");
    assert!(said.contains("endpoints.rt.rest.credentials"), "{said}");
}
