//! The Redmine 5 profile on an issue as Redmine 5.0 answers it.
use super::*;
use crate::event::find_marker;
use crate::event::Status;

/// `GET /issues/7.json?include=journals` as Redmine 5.0 answers it.
const ISSUE: &str = r#"{"issue":{"id":7,"project":{"id":1,"name":"Deskbridge"},
  "tracker":{"id":3,"name":"Support"},"status":{"id":3,"name":"Resolved","is_closed":false},
  "priority":{"id":2,"name":"Normal"},"author":{"id":5,"name":"Desk Bridge"},
  "subject":"Scale shows wrong weight","description":"Calibration lost\r\n\r\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]",
  "start_date":"2024-05-01","due_date":null,"done_ratio":0,"is_private":false,
  "estimated_hours":null,"total_estimated_hours":null,
  "created_on":"2024-05-01T10:00:00Z","updated_on":"2024-05-01T10:05:00Z","closed_on":null,
  "journals":[
    {"id":11,"user":{"id":5,"name":"Desk Bridge"},"notes":"Dana (Service Co) wrote:\n\nUrgent\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]","created_on":"2024-05-01T10:01:00Z","private_notes":false,"details":[]},
    {"id":12,"user":{"id":1,"name":"Redmine Admin"},"notes":"We ordered the part.","created_on":"2024-05-01T10:02:00Z","private_notes":false,"details":[]},
    {"id":13,"user":{"id":1,"name":"Redmine Admin"},"notes":"cost 40 EUR","created_on":"2024-05-01T10:03:00Z","private_notes":true,"details":[]},
    {"id":14,"user":{"id":1,"name":"Redmine Admin"},"notes":"","created_on":"2024-05-01T10:04:00Z","private_notes":false,
     "details":[{"property":"attr","name":"status_id","old_value":"1","new_value":"3"},
                {"property":"attr","name":"done_ratio","old_value":"0","new_value":"100"}]},
    {"id":15,"user":{"id":1,"name":"Redmine Admin"},"notes":"> Dana wrote: [deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]\n\nAgreed.","created_on":"2024-05-01T10:05:00Z","private_notes":false,"details":[]}
  ]}}"#;

fn profile() -> Profile {
    Profile::load(Some("redmine"), None).unwrap()
}

fn events(from: &str) -> Vec<Event> {
    let v: Value = serde_json::from_str(ISSUE).unwrap();
    let issue = v.pointer("/issue").unwrap();
    let entries = issue["journals"].as_array().unwrap().clone();
    read(&profile(), "5", issue, &entries, from)
}

#[test]
fn journals_become_events_with_audience_status_and_own_writes_named() {
    let evs = events("2024-05-01T09:00:00Z");
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "ticket_created",
            "comment",
            "comment",
            "comment",
            "status_changed",
            "comment"
        ]
    );
    // deskbridge's own writes carry the service account's name
    assert_eq!(evs[0].author.as_ref().unwrap().name, "deskbridge");
    assert_eq!(evs[1].author.as_ref().unwrap().name, "deskbridge");
    assert_eq!(evs[0].source_id.as_deref(), Some("ticket-7"));
    let EventKind::TicketCreated { ticket_data } = &evs[0].kind else {
        panic!()
    };
    assert_eq!(ticket_data.status, Some(Status::Resolved));
    assert_eq!(ticket_data.priority.as_deref(), Some("normal"));
    let comment = |e: &Event| match &e.kind {
        EventKind::Comment { comment } => comment.clone(),
        _ => panic!("not a comment"),
    };
    assert_eq!(comment(&evs[2]).audience, Audience::Public);
    assert_eq!(comment(&evs[2]).body, "We ordered the part.");
    assert_eq!(evs[2].author.as_ref().unwrap().name, "Redmine Admin");
    assert_eq!(evs[2].source_id.as_deref(), Some("journal-12"));
    assert_eq!(comment(&evs[3]).audience, Audience::Internal);
    assert!(matches!(
        evs[4].kind,
        EventKind::StatusChanged {
            status: Status::Resolved
        }
    ));
    // the marker deskbridge wrote stays on its own note; a quote of it
    // in someone else's loses it (or ingest would take it for an echo)
    assert!(find_marker(&comment(&evs[1]).body).is_some());
    assert_eq!(find_marker(&comment(&evs[5]).body), None);
    assert!(comment(&evs[5]).body.contains("Agreed."));
}

#[test]
fn entries_before_the_window_are_not_taken_again_and_ids_are_stable() {
    let all = events("2024-05-01T09:00:00Z");
    let later = events("2024-05-01T10:03:00Z");
    assert_eq!(later.len(), 3, "journals 13, 14, 15");
    let ids: Vec<uuid::Uuid> = all.iter().map(|e| e.id).collect();
    for e in &later {
        assert!(ids.contains(&e.id), "the same entry keeps its event id");
    }
    assert_eq!(all[2].id.get_version_num(), 7);
    // time-ordered like every event id
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
}

#[test]
fn without_status_history_the_ticket_status_is_compared_with_the_last_seen() {
    // Redmine's profile read as if its journals had no status changes.
    let mut p = profile();
    p.journal.status_field = None;
    let me = Identity {
        user_id: "5".into(),
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
    let v: Value = serde_json::from_str(ISSUE).unwrap();
    let issue = v.pointer("/issue").unwrap();
    let entries = issue["journals"].as_array().unwrap().clone();
    let evs = r.events(issue, &entries, t("2024-05-01T09:00:00Z"));
    assert!(!evs.iter().any(|e| e.kind.name() == "status_changed"));
    // created in the window and never seen: its creation tells
    assert!(r
        .status_snapshot(issue, None, t("2024-05-01T09:00:00Z"))
        .is_none());
    // unchanged
    let later = t("2024-05-01T10:30:00Z");
    assert!(r.status_snapshot(issue, Some("3"), later).is_none());
    // changed since last seen, or never seen on an older ticket
    for last in [Some("2"), None] {
        let ev = r.status_snapshot(issue, last, later).unwrap();
        assert!(matches!(
            ev.kind,
            EventKind::StatusChanged {
                status: Status::Resolved
            }
        ));
        assert_eq!(ev.occurred_at, t("2024-05-01T10:05:00Z"));
        assert_eq!(ev.author, None);
    }
    // the same change read again is the same event
    assert_eq!(
        r.status_snapshot(issue, Some("2"), later).unwrap().id,
        r.status_snapshot(issue, Some("1"), later).unwrap().id
    );
}

#[test]
fn statuses_map_both_ways() {
    let p = profile();
    assert_eq!(p.statuses.inbound.get("3"), Some(&Status::Resolved));
    assert_eq!(p.statuses.inbound.get("4"), Some(&Status::Waiting));
    assert_eq!(
        p.statuses
            .outbound
            .get(&Status::Cancelled)
            .map(String::as_str),
        Some("6")
    );
    assert_outbound_round_trips(&p);
}

#[test]
fn create_and_status_requests_render_as_redmine_expects() {
    use crate::connector::rest::template::{render_json, render_path};
    let p = profile();
    let vars = vars(&[
        ("project", "deskbridge"),
        ("tracker_id", "3"),
        ("subject", "Printer \"on fire\""),
        ("description", "It burns.\n\n[deskbridge:x]"),
        ("priority", ""),
        ("ticket", "7"),
        ("status", "99"),
    ]);
    assert_eq!(
        render_json(p.create_ticket.body.as_ref().unwrap(), &vars).unwrap(),
        serde_json::json!({"issue": {"project_id": "deskbridge", "tracker_id": "3",
            "subject": "Printer \"on fire\"", "description": "It burns.\n\n[deskbridge:x]"}})
    );
    assert_eq!(
        render_json(p.add_internal_note.body.as_ref().unwrap(), &{
            let mut v = vars.clone();
            v.insert("text".into(), "n".into());
            v
        })
        .unwrap(),
        serde_json::json!({"issue": {"notes": "n", "private_notes": true}})
    );
    assert_eq!(
        render_json(p.set_status.body.as_ref().unwrap(), &vars).unwrap(),
        serde_json::json!({"issue": {"status_id": "99"}})
    );
    assert_eq!(
        render_path(&p.set_status.path, &vars).unwrap(),
        "/issues/7.json"
    );
}
