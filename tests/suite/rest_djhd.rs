//! Live: a sample desk (the service company) linked with a real
//! django-helpdesk 2.6 (the vendor) through the REST connector and its
//! django-helpdesk profile. django-helpdesk is started by scripts/test.sh
//! (scripts/services/django-helpdesk.sh), which writes
//! /run/deskbridge-test/django-helpdesk.env.

use crate::common::djhd::*;
use crate::common::rest::*;
use crate::common::*;
use deskbridge::event::Status;
use std::time::Duration;

/// How often the test looks at django-helpdesk or the desk while waiting.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread")]
async fn sample_desk_and_django_helpdesk_relay_both_ways_under_policy() {
    let Some(dh) = djhd() else { return };
    let extra = dh.extra();
    let (desk, gw) = desk_and_gateway(dh.endpoint(&dh.url, &extra)).await;

    // 1. Transfer: the desk's ticket becomes a django-helpdesk ticket.
    let subject = format!(
        "Scale shows 'wrong' weight {}",
        uuid::Uuid::new_v4().simple()
    );
    let t = create_ticket(&desk, &subject);
    let found = first_some(300, POLL, || dh.find_by_title(&subject)).await;
    let id = found.unwrap_or_else(|| panic!("no django-helpdesk ticket:\n{}", gw.log()));
    let ticket = dh.ticket(&id).await;
    assert_eq!(ticket["queue"].to_string(), dh.queue);
    let description = ticket["description"].as_str().unwrap();
    assert!(description.contains("Calibration lost"), "{description}");
    assert!(!description.contains("555 0100"), "the phone stays home");
    assert!(description.contains("[deskbridge:"), "{description}");
    let opened = &ticket["followup_set"][0];
    assert_eq!(
        opened["user"].to_string(),
        dh.user_id,
        "written as the service account"
    );
    link_knows(&gw, "the link knows the django-helpdesk ticket", &id).await;

    // 2. A comment for the partner is a public follow-up; an internal one does not cross.
    comment_for_partner_and_internally(&desk, &t);
    eventually("the partner comment is a public follow-up", 30, || async {
        followups_containing(&dh.followups(&id).await, "spare load cell").len() == 1
    })
    .await;
    let reply = followups_containing(&dh.followups(&id).await, "spare load cell").remove(0);
    assert_eq!(reply["public"], true, "{reply}");
    assert_eq!(reply["user"].to_string(), dh.user_id);
    assert!(reply["comment"]
        .as_str()
        .unwrap()
        .contains("Dana (Service Co)"));

    // 2b. Files: of the partner comment's files, the text file lands on
    //     its follow-up byte for byte; the binary's extension is not in
    //     django-helpdesk's default list (it would refuse the follow-up),
    //     so it is named in the text instead. The internal note's file
    //     stays home.
    let sent = comment_with_files(&desk, &t);
    eventually("the comment with files is a follow-up", 30, || async {
        followups_containing(&dh.followups(&id).await, "Calibration report attached").len() == 1
    })
    .await;
    let (bin, txt): (Vec<_>, Vec<_>) = sent.into_iter().partition(|(n, _)| n.ends_with(".bin"));
    assert_files_landed(&dh.files(&id).await, &txt);
    assert_eq!(dh.files(&id).await.len(), 1, "only the text file");
    let reply =
        followups_containing(&dh.followups(&id).await, "Calibration report attached").remove(0);
    let text = reply["comment"].as_str().unwrap();
    assert!(
        text.contains("files not transferred by deskbridge") && text.contains(&bin[0].0),
        "{text}"
    );

    // django-helpdesk renders a follow-up as a Django template: template
    // syntax in a comment arrives as written.
    let literal = "Type {{ ticket.title }} {# as is #} and {% literally";
    desk.desk.comment(
        &t,
        literal,
        deskbridge::event::Audience::Partner,
        "Dana",
        &[],
    );
    eventually("the template syntax arrives as written", 30, || async {
        followups_containing(&dh.followups(&id).await, literal).len() == 1
    })
    .await;

    // 3. django-helpdesk's own staff write: a public follow-up crosses (as an
    //    internal note marked with the vendor's name), an internal one does not.
    dh.follow_up(&id, "Load cell ordered, on site Friday", true, None)
        .await;
    dh.follow_up(&id, "Our cost: 40 EUR", false, None).await;
    vendor_note_reaches_desk(&desk, &gw, &t, POLL, "the public follow-up").await;

    // 3b. A follow-up with a file: the file reaches the desk byte for byte.
    let vendor_bytes = vendor_file();
    let vendor_name = "Лист калибровки.pdf";
    dh.follow_up_with_file(
        &id,
        "Calibration sheet from the factory",
        vendor_name,
        &vendor_bytes,
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

    // 4. django-helpdesk's status change (a follow-up with new_status) reaches the desk.
    dh.follow_up(&id, "", false, Some(3)).await;
    desk_shows_resolved(&desk, &t).await;

    // 5. Several polling rounds later: no echo either way, nothing private crossed.
    let before = dh.followups(&id).await.len();
    let desk_before = DeskBefore::take(&desk, &gw, &t).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let followups = dh.followups(&id).await;
    let dt = desk.desk.ticket(&t).unwrap();
    assert_eq!(followups.len(), before, "django-helpdesk: {followups:#?}");
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_eq!(followups_containing(&followups, "spare load cell").len(), 1);
    assert!(followups_containing(&followups, "Premium SLA").is_empty());
    assert_desk_after_quiet_rounds(&dt);

    // 6. The desk closes the ticket: a follow-up by the service account sets
    //    status 4 (Closed) in django-helpdesk, and it does not come back.
    desk.desk.set_status(&t, Status::Closed, "Dana");
    eventually("django-helpdesk shows Closed", 30, || async {
        dh.ticket(&id).await["status"] == 4
    })
    .await;
    let closing = dh.followups(&id).await.pop().unwrap();
    assert_eq!(closing["new_status"], 4, "{closing}");
    assert_eq!(closing["user"].to_string(), dh.user_id);
    let desk_before = DeskBefore::take(&desk, &gw, &t).await;
    let before = dh.followups(&id).await.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dt = desk.desk.ticket(&t).unwrap();
    desk_before.assert_unchanged(&desk, &t, &dt);
    assert_eq!(dt.status, Status::Closed);
    assert_eq!(dh.followups(&id).await.len(), before);
    assert!(gw.idle().await);
}

#[test]
fn probe_names_refused_credentials() {
    let Some(dh) = djhd() else { return };
    let extra = dh.extra();
    let said = probe_with_wrong_credentials(RestEndpoint {
        credentials: "not-the-password",
        ..dh.endpoint(&dh.url, &extra)
    });
    assert!(said.contains("FAIL"), "{said}");
    assert!(said.contains("the credentials are refused"), "{said}");
    assert!(
        said.contains("endpoints.django-helpdesk.rest.credentials"),
        "{said}"
    );
}
