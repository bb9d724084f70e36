//! The django-helpdesk 2.6 profile on a ticket as 2.6.1's API answers
//! it (recorded from a live instance; the service account is user 2).
use super::*;
use crate::event::Status;

/// `GET /api/tickets/1/`: opened by deskbridge, a public and an
/// internal follow-up by the superuser (1), then resolved by it.
const TICKET: &str = r#"{"id":1,"queue":1,"title":"t1","description":"d1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]",
  "resolution":null,"submitter_email":"deskbridge@example.invalid","assigned_to":null,"status":3,
  "on_hold":false,"priority":3,"due_date":null,"merged_to":null,"followup_set":[
  {"id":1,"ticket":1,"user":2,"title":"Ticket Opened","comment":"d1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]","public":true,"new_status":null,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:00:00.831393Z","message_id":null,"email_recipients":[]},
  {"id":2,"ticket":1,"user":1,"title":"t1","comment":"on site Friday","public":true,"new_status":null,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:01:00.326403Z","message_id":null,"email_recipients":[]},
  {"id":3,"ticket":1,"user":1,"title":"t1","comment":"cost 40 EUR","public":false,"new_status":null,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:02:00Z","message_id":null,"email_recipients":[]},
  {"id":4,"ticket":1,"user":1,"title":"t1 and Resolved","comment":"","public":false,"new_status":3,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:03:00.5Z","message_id":null,"email_recipients":[]}]}"#;

fn profile() -> Profile {
    Profile::load(Some("django-helpdesk"), None).unwrap()
}

#[test]
fn follow_ups_are_comments_by_their_public_flag_and_the_opening_is_no_comment() {
    let v: Value = serde_json::from_str(TICKET).unwrap();
    let entries = v["followup_set"].as_array().unwrap().clone();
    let evs = read(&profile(), "2", &v, &entries, "2024-05-01T09:00:00Z");
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["ticket_created", "comment", "comment", "status_changed"]
    );
    let EventKind::TicketCreated { ticket_data } = &evs[0].kind else {
        panic!()
    };
    assert!(ticket_data.description.starts_with("d1"));
    assert_eq!(ticket_data.status, Some(Status::Resolved));
    assert_eq!(evs[0].occurred_at, t("2024-05-01T10:00:00.831393Z"));
    let audience = |e: &Event| match &e.kind {
        EventKind::Comment { comment } => comment.audience,
        _ => panic!("not a comment"),
    };
    assert_eq!(audience(&evs[1]), Audience::Public);
    assert_eq!(audience(&evs[2]), Audience::Internal);
    // the follow-up with new_status is the status change
    let EventKind::StatusChanged { status } = &evs[3].kind else {
        panic!()
    };
    assert_eq!(*status, Status::Resolved);
    assert_eq!(evs[3].occurred_at, t("2024-05-01T10:03:00.5Z"));
    // the window starts after the opening: only what is newer
    let later = read(&profile(), "2", &v, &entries, "2024-05-01T10:01:30Z");
    assert_eq!(later.len(), 2);
}

/// The follow-ups as `GET /api/followups/?page=last` lists them, read
/// without their ticket: the same events as from the ticket, by the
/// same ids; the opening is no comment where it is known.
#[test]
fn listed_follow_ups_read_without_the_ticket_give_the_same_events() {
    let p = profile();
    let lp = &p.list_changes;
    assert_eq!(lp.entries.as_deref(), Some("/ticket"));
    let fe = lp.from_end.as_ref().unwrap();
    assert_eq!((fe.last.as_str(), fe.count.as_str()), ("last", "/count"));
    let v: Value = serde_json::from_str(TICKET).unwrap();
    let listed = v["followup_set"].as_array().unwrap().clone();
    let updated = lp.updated_at.as_deref().unwrap();
    assert_eq!(
        time_at(&listed[3], updated, None),
        Some(t("2024-05-01T10:03:00.5Z"))
    );
    assert!(listed_before(
        &listed[0],
        updated,
        None,
        t("2024-05-01T10:00:01Z")
    ));
    assert_eq!(text_at(&listed[0], "/ticket").as_deref(), Some("1"));
    let me = Identity {
        user_id: "2".into(),
        login: "deskbridge".into(),
        kind: None,
    };
    let r = Reader {
        endpoint: "vendor",
        profile: &p,
        statuses: &p.statuses,
        places: &Places::of_profile(&p),
        me: &me,
        service_account: "deskbridge",
    };
    let from = t("2024-05-01T09:00:00Z");
    let whole = r.events(&v, &listed, from);
    let alone = r.entry_events("1", &Value::Null, &listed, from, Some("1"));
    let ids = |evs: &[Event]| -> Vec<uuid::Uuid> {
        evs.iter()
            .filter(|e| !matches!(e.kind, EventKind::TicketCreated { .. }))
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(ids(&whole), ids(&alone));
    assert_eq!(alone.len(), 3);
    // Without the opening known, it would be a comment: deskbridge's own.
    let unknown = r.entry_events("1", &Value::Null, &listed, from, None);
    assert_eq!(unknown.len(), 4);
    assert_eq!(unknown[0].author.as_ref().unwrap().name, "deskbridge");
    // An old ticket read for the first time is learnt as it stands.
    let data = r.ticket_data(&v, &listed);
    assert_eq!(data.subject, "t1");
    assert_eq!(data.status, Some(Status::Resolved));
}

#[test]
fn a_full_page_without_a_next_link_is_the_last() {
    let mut lp = profile().list_changes;
    lp.next = Some("/next".into());
    lp.page_size = 2;
    let page = |next: Value| serde_json::json!({"count": 2, "next": next, "results": [{}, {}]});
    assert!(last_page(&lp, &page(Value::Null), 2));
    assert!(!last_page(
        &lp,
        &page("http://h/api/tickets/?page=2".into()),
        2
    ));
    assert!(last_page(
        &lp,
        &page("http://h/api/tickets/?page=2".into()),
        1
    ));
    lp.next = None;
    assert!(!last_page(&lp, &page(Value::Null), 2));
}

#[test]
fn writes_send_numbers_where_django_helpdesk_wants_them() {
    let p = profile();
    let vars = vars(&[
        ("ticket", "7"),
        ("text", "hi"),
        ("status", "4"),
        ("project", "1"),
        ("user_id", "2"),
        ("submitter_email", "d@example.invalid"),
        ("subject", "s"),
        ("description", "d"),
    ]);
    let body =
        crate::connector::rest::template::render_json(p.set_status.body.as_ref().unwrap(), &vars)
            .unwrap();
    assert_eq!(body["ticket"], 7);
    assert_eq!(body["new_status"], 4);
    assert_eq!(body["public"], false);
    let body =
        crate::connector::rest::template::render_json(p.add_comment.body.as_ref().unwrap(), &vars)
            .unwrap();
    assert_eq!(body["public"], true);
    let body = crate::connector::rest::template::render_json(
        p.create_ticket.body.as_ref().unwrap(),
        &vars,
    )
    .unwrap();
    assert_eq!(body["queue"], 1);
    assert_outbound_round_trips(&p);
}
