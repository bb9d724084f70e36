//! Live: a sample desk (the service company) linked with a real
//! django-helpdesk 2.6 (the vendor) through the REST connector and its
//! django-helpdesk profile. django-helpdesk is started by scripts/test.sh
//! (scripts/services/django-helpdesk.sh), which writes
//! /run/deskbridge-test/django-helpdesk.env.

use crate::common::djhd::*;
use crate::common::rest::*;
use crate::common::*;
use deskbridge::event::{Audience, Status};
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

/// The follow-ups of `ticket` among the newest `n` of every ticket (the
/// follow-ups list runs by date): read without reading the ticket, which
/// costs django-helpdesk a pass over every ticket.
async fn newest_followups(dh: &Djhd, ticket: u64, n: u32) -> Vec<serde_json::Value> {
    let (code, v) = dh
        .call(
            reqwest::Method::GET,
            &format!("/followups/?page=last&page_size={n}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ticket"] == ticket)
        .cloned()
        .collect()
}

/// The desk's ticket handed over from django-helpdesk's `upstream`.
fn desk_ticket_of(
    desk: &Party,
    upstream: u64,
) -> Option<deskbridge::tools::sample_desk::DeskTicket> {
    let upstream = upstream.to_string();
    desk.desk
        .tickets()
        .into_iter()
        .find(|t| t.partner.as_ref().and_then(|p| p.1.as_deref()) == Some(upstream.as_str()))
}

/// A django-helpdesk holding 25,000 tickets, seeded straight into its
/// database (a private instance: the shared one serves other tests). Its
/// oldest and its newest ticket are reopened, which hands each to the
/// vendor's desk (a transfer rule on the status: tickets created before
/// deskbridge started are learnt when they change); a public follow-up on
/// each crosses once, the vendor's reply reaches both once. Idle rounds
/// list the newest follow-ups only: no ticket read, no event taken. What a
/// round costs is printed.
#[tokio::test(flavor = "multi_thread")]
async fn a_desk_of_25000_tickets_reaches_its_oldest_and_newest_ticket() {
    const TICKETS: u64 = 25_000;
    let Some(p) = PrivateDjhd::start() else {
        return;
    };
    let (oldest, newest, secs) = p.seed(TICKETS);
    assert_eq!(newest - oldest + 1, TICKETS);
    eprintln!("django-helpdesk: {TICKETS} tickets seeded in {secs:.2} s (one SQL transaction)");
    let dh = &p.dh;
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("djhd.password"), &dh.password).unwrap();
    // Each ticket django-helpdesk's API serves costs it a pass over every
    // ticket (README, the profile): minutes here, hence the timeout.
    let conf = format!(
        r#"{PARTIES}
[endpoints.django-helpdesk]
party = "svc"
kind = "rest"
service_account = "{user}"
[endpoints.django-helpdesk.rest]
profile = "django-helpdesk"
base_url = "{url}"
username = "{user}"
credentials = {{ file = "{file}" }}
project = "{queue}"
settings = {{ user_id = "{user_id}" }}
poll_secs = 1
timeout_secs = 900
rate_limit_per_minute = 1200
[endpoints.django-helpdesk.policy]
share_client_conversation = true
{desk}
[[transfers]]
from = "django-helpdesk"
to = "desk"
when = {{ status = "reopened" }}
"#,
        user = dh.user,
        url = dh.url,
        file = dir.path().join("djhd.password").display(),
        queue = dh.queue,
        user_id = dh.user_id,
        desk = desk.toml(dir.path(), "vendor", ""),
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let ok = gw.cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let poller = || async { gw.status().await["pollers"]["django-helpdesk"].clone() };
    eventually("the first rounds", 60, || async {
        poller().await["rounds"].as_u64().unwrap_or(0) >= 2
    })
    .await;

    // 1. Idle, 25,000 tickets: what a round costs.
    let idle = |what: &'static str| async move {
        let before = poller().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = poller().await;
        let rounds = after["rounds"].as_u64().unwrap() - before["rounds"].as_u64().unwrap();
        eprintln!(
            "django-helpdesk, {TICKETS} tickets, idle ({what}): {rounds} rounds in 5 s; the last: {} list request(s), {} ticket(s) read, {} ms",
            after["last_round_pages"], after["last_round_reads"], after["last_round_ms"]
        );
        assert!(rounds >= 2, "{after}");
        assert_eq!(
            after["taken"], before["taken"],
            "idle: nothing taken: {after}"
        );
        assert_eq!(
            after["last_round_reads"], 0,
            "idle: no ticket read: {after}"
        );
        assert_eq!(
            after["last_round_pages"], 1,
            "idle: the newest follow-ups only: {after}"
        );
    };
    idle("before").await;

    // 2. The oldest and the newest ticket are reopened: each is read once
    //    (learnt), and the rule hands it to the desk.
    for id in [oldest, newest] {
        dh.follow_up(&id.to_string(), "", false, Some(2)).await;
    }
    eventually("both tickets reach the desk", 900, || async {
        desk_ticket_of(&desk, oldest).is_some() && desk_ticket_of(&desk, newest).is_some()
    })
    .await;
    let at_desk = |id| desk_ticket_of(&desk, id).unwrap();
    assert_eq!(at_desk(oldest).subject, "Seeded ticket 1 of 25000");
    assert_eq!(at_desk(newest).subject, "Seeded ticket 25000 of 25000");
    let learnt = poller().await;
    eprintln!(
        "django-helpdesk, {TICKETS} tickets: a round that read a reopened ticket (learnt, handed over): {} list request(s), {} ticket(s) read, {} ms",
        learnt["last_round_pages"], learnt["last_round_reads"], learnt["last_round_ms"]
    );

    // 3. A public follow-up on each crosses once; the desk's reply on each
    //    comes back once. No ticket is read for them: deskbridge knows both.
    for id in [oldest, newest] {
        dh.follow_up(
            &id.to_string(),
            &format!("Drawer sticks on {id}"),
            true,
            None,
        )
        .await;
    }
    eventually("both follow-ups reach the desk", 120, || async {
        [oldest, newest].iter().all(|&id| {
            at_desk(id)
                .comments
                .iter()
                .any(|c| c.body.contains(&format!("Drawer sticks on {id}")))
        })
    })
    .await;
    for id in [oldest, newest] {
        let t = at_desk(id);
        desk.desk.comment(
            &t.id,
            &format!("New drawer for {id} shipped"),
            Audience::Public,
            "Vic",
            &[],
        );
    }
    eventually("both replies reach django-helpdesk", 120, || async {
        let mut all = true;
        for id in [oldest, newest] {
            let f = newest_followups(dh, id, 100).await;
            all &= followups_containing(&f, &format!("New drawer for {id} shipped")).len() == 1;
        }
        all
    })
    .await;
    let busy = poller().await;
    assert_eq!(
        busy["last_round_reads"], 0,
        "known tickets' follow-ups are read from the list: {busy}"
    );

    // 4. Quiet again: nothing doubled or echoed, idle rounds as before.
    eventually("the gateway is idle", 60, || gw.idle()).await;
    idle("after").await;
    for id in [oldest, newest] {
        let t = at_desk(id);
        let sticks = format!("Drawer sticks on {id}");
        assert_eq!(
            t.comments
                .iter()
                .filter(|c| c.body.contains(&sticks))
                .count(),
            1,
            "{t:?}"
        );
        assert!(
            !t.comments
                .iter()
                .any(|c| c.body.contains("shipped") && c.event.is_some()),
            "the desk's own reply came back: {t:?}"
        );
        let f = newest_followups(dh, id, 100).await;
        assert_eq!(followups_containing(&f, &sticks).len(), 1, "{f:#?}");
        assert_eq!(
            followups_containing(&f, &format!("New drawer for {id} shipped")).len(),
            1,
            "{f:#?}"
        );
    }
    let status = gw.status().await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}
