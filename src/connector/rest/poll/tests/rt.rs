//! The Request Tracker 5 profile on answers shaped as RT 5.0.3's REST2
//! gives them (recorded from a live RT, ids and times kept).
use super::*;
use crate::connector::rest::history::content_text;
use crate::connector::rest::template::{render_json, render_path};
use crate::event::find_marker;
use crate::event::Status;

/// `GET /ticket/12`, trimmed of `_hyperlinks` and empty role lists.
const TICKET: &str = r#"{"Cc":[],"Started":"1970-01-01T00:00:00Z","AdminCc":[],
  "InitialPriority":"0","Resolved":"2024-05-01T10:05:00Z",
  "Creator":{"type":"user","id":"deskbridge","_url":"http://127.0.0.1:8081/REST/2.0/user/deskbridge"},
  "Due":"1970-01-01T00:00:00Z","LastUpdated":"2024-05-01T10:05:00Z","Starts":"1970-01-01T00:00:00Z",
  "Priority":"0","TimeWorked":"0","TimeLeft":"0",
  "LastUpdatedBy":{"type":"user","id":"root","_url":"http://127.0.0.1:8081/REST/2.0/user/root"},
  "Created":"2024-05-01T10:00:00Z","Type":"ticket","FinalPriority":"0",
  "Queue":{"type":"queue","id":"3","_url":"http://127.0.0.1:8081/REST/2.0/queue/3"},
  "Status":"resolved","id":12,
  "EffectiveId":{"_url":"http://127.0.0.1:8081/REST/2.0/ticket/12","id":"12","type":"ticket"},
  "CustomFields":[],"Requestor":[],
  "Owner":{"type":"user","id":"Nobody","_url":"http://127.0.0.1:8081/REST/2.0/user/Nobody"},
  "TimeEstimated":"0","Subject":"Scale shows wrong weight"}"#;

/// `GET /ticket/12/history?fields=Type,Creator,Created,Field,OldValue,NewValue&page=1&per_page=100`.
const HISTORY: &str = r#"{"per_page":100,"count":8,"page":1,"pages":1,"total":8,"items":[
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/49","id":"49","Type":"Create","type":"transaction","Created":"2024-05-01T10:00:00Z","Field":"","OldValue":"","NewValue":"",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/deskbridge","id":"deskbridge","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/50","id":"50","Type":"Correspond","type":"transaction","Created":"2024-05-01T10:01:00Z","Field":"","OldValue":"","NewValue":"",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/deskbridge","id":"deskbridge","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/51","id":"51","Type":"Status","type":"transaction","Created":"2024-05-01T10:01:00Z","Field":"Status","OldValue":"new","NewValue":"open",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/RT_System","id":"RT_System","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/52","id":"52","Type":"Correspond","type":"transaction","Created":"2024-05-01T10:02:00Z","Field":"","OldValue":"","NewValue":"",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/53","id":"53","Type":"Comment","type":"transaction","Created":"2024-05-01T10:03:00Z","Field":"","OldValue":"","NewValue":"",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/54","id":"54","Type":"AddWatcher","type":"transaction","Created":"2024-05-01T10:03:30Z","Field":"AdminCc","OldValue":"","NewValue":"14",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/55","id":"55","Type":"Status","type":"transaction","Created":"2024-05-01T10:04:00Z","Field":"Status","OldValue":"open","NewValue":"resolved",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
  {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/56","id":"56","Type":"Correspond","type":"transaction","Created":"2024-05-01T10:05:00Z","Field":"","OldValue":"","NewValue":"",
   "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}}
]}"#;

/// `GET /transaction/52/attachments?fields=ContentType,Content&per_page=100`
/// for a correspond that came in by mail as text and HTML.
const ATTACHMENTS: &str = r#"{"total":3,"items":[
  {"id":"20","_url":"http://127.0.0.1:8081/REST/2.0/attachment/20","type":"attachment","ContentType":"multipart/alternative","Content":""},
  {"id":"21","_url":"http://127.0.0.1:8081/REST/2.0/attachment/21","type":"attachment","ContentType":"text/html","Content":"<p>We ordered the part.</p>"},
  {"id":"22","_url":"http://127.0.0.1:8081/REST/2.0/attachment/22","type":"attachment","ContentType":"text/plain","Content":"We ordered the part."}
],"page":1,"count":3,"per_page":100,"pages":1}"#;

fn profile() -> Profile {
    Profile::load(Some("rt"), None).unwrap()
}

/// The history as `RestEndpoint::entries` gives it: the texts read
/// from each transaction's attachments put at `journal.text`.
fn entries(p: &Profile) -> Vec<Value> {
    let v: Value = serde_json::from_str(HISTORY).unwrap();
    let mut items = v
        .pointer(&p.journal.list)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let c = p.entry_content.as_ref().unwrap();
    let texts = [
        (
            "49",
            "Calibration lost\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]",
        ),
        (
            "50",
            "Dana (Service Co) wrote:\n\nUrgent\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]",
        ),
        (
            "52",
            &content_text(c, &serde_json::from_str(ATTACHMENTS).unwrap(), None).unwrap(),
        ),
        ("53", "cost 40 EUR"),
        (
            "56",
            "> Dana wrote: [deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]\n\nAgreed.",
        ),
    ];
    for item in &mut items {
        let id = item["id"].as_str().unwrap().to_string();
        if let Some((_, text)) = texts.iter().find(|(i, _)| *i == id) {
            set_at(item, &p.journal.text, Value::String(text.to_string()));
        }
    }
    items
}

fn events(from: &str) -> Vec<Event> {
    let p = profile();
    let ticket: Value = serde_json::from_str(TICKET).unwrap();
    read(&p, "deskbridge", &ticket, &entries(&p), from)
}

#[test]
fn transactions_become_events_correspond_public_comment_internal() {
    let evs = events("2024-05-01T09:00:00Z");
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "ticket_created",
            "comment",
            "status_changed",
            "comment",
            "comment",
            "status_changed",
            "comment"
        ]
    );
    let EventKind::TicketCreated { ticket_data } = &evs[0].kind else {
        panic!()
    };
    // the description is the Create transaction's text, not a comment
    assert!(ticket_data.description.starts_with("Calibration lost"));
    assert_eq!(ticket_data.status, Some(Status::Resolved));
    assert_eq!(ticket_data.subject, "Scale shows wrong weight");
    assert_eq!(evs[0].source_id.as_deref(), Some("ticket-12"));
    // deskbridge's own writes carry the service account's name
    assert_eq!(evs[0].author.as_ref().unwrap().name, "deskbridge");
    assert_eq!(evs[1].author.as_ref().unwrap().name, "deskbridge");
    let comment = |e: &Event| match &e.kind {
        EventKind::Comment { comment } => comment.clone(),
        _ => panic!("not a comment"),
    };
    // RT opening the ticket on the first correspond is RT_System's change
    assert!(matches!(
        evs[2].kind,
        EventKind::StatusChanged {
            status: Status::InProgress
        }
    ));
    assert_eq!(evs[2].author.as_ref().unwrap().name, "RT_System");
    assert_eq!(comment(&evs[3]).audience, Audience::Public);
    assert_eq!(
        comment(&evs[3]).body,
        "We ordered the part.",
        "text/plain part"
    );
    assert_eq!(evs[3].author.as_ref().unwrap().name, "root");
    assert_eq!(evs[3].source_id.as_deref(), Some("journal-52"));
    assert_eq!(comment(&evs[4]).audience, Audience::Internal);
    assert!(matches!(
        evs[5].kind,
        EventKind::StatusChanged {
            status: Status::Resolved
        }
    ));
    assert!(find_marker(&comment(&evs[1]).body).is_some());
    assert_eq!(find_marker(&comment(&evs[6]).body), None);
    assert!(comment(&evs[6]).body.contains("Agreed."));
    // the window: only transactions at or after it
    let later = events("2024-05-01T10:03:00Z");
    assert_eq!(later.len(), 3, "53 (comment), 55 (status), 56 (correspond)");
}

#[test]
fn statuses_map_both_ways() {
    let p = profile();
    for (rt, canonical) in [
        ("new", Status::New),
        ("open", Status::InProgress),
        ("stalled", Status::Waiting),
        ("resolved", Status::Resolved),
        ("rejected", Status::Cancelled),
        ("deleted", Status::Cancelled),
    ] {
        assert_eq!(p.statuses.inbound.get(rt), Some(&canonical), "{rt}");
    }
    assert_outbound_round_trips(&p);
}

#[test]
fn requests_render_as_rt_expects() {
    let p = profile();
    let vars = vars(&[
        ("project", "deskbridge"),
        ("subject", "it's \"on fire\""),
        ("description", "It burns.\n\n[deskbridge:x]"),
        ("priority", ""),
        ("ticket", "12"),
        ("status", "stalled"),
        ("marker", "[deskbridge:x]"),
        ("since", "2024-05-01T10:00:00+00:00"),
        ("page", "2"),
        ("limit", "100"),
        ("offset", "100"),
        ("entry", "52"),
    ]);
    assert_eq!(
        render_json(p.create_ticket.body.as_ref().unwrap(), &vars).unwrap(),
        serde_json::json!({"Queue": "deskbridge", "Subject": "it's \"on fire\"",
            "Content": "It burns.\n\n[deskbridge:x]", "ContentType": "text/plain"})
    );
    assert_eq!(
        render_path(&p.add_comment.path, &vars).unwrap(),
        "/ticket/12/correspond"
    );
    assert_eq!(
        render_path(&p.add_internal_note.path, &vars).unwrap(),
        "/ticket/12/comment"
    );
    assert_eq!(
        render_json(p.set_status.body.as_ref().unwrap(), &vars).unwrap(),
        serde_json::json!({"Status": "stalled"})
    );
    let query = |path: String| -> String {
        let url = url::Url::parse(&format!("http://x{path}")).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    assert_eq!(
        query(render_path(&p.find_ticket.path, &vars).unwrap()),
        r#"Queue='deskbridge' AND Creator='__CurrentUser__' AND Subject='it\'s "on fire"'"#
    );
    let list = render_path(&p.list_changes.path, &vars).unwrap();
    assert_eq!(
        query(list.clone()),
        "Queue='deskbridge' AND LastUpdated >= '2024-05-01T10:00:00+00:00'"
    );
    assert!(list.ends_with("&page=2&per_page=100"), "{list}");
    // "Z" is misread by TicketSQL: the offset is written out
    let since = t("2024-05-01T10:00:00Z")
        .format(p.list_changes.since_format.as_deref().unwrap())
        .to_string();
    assert_eq!(since, "2024-05-01T10:00:00+00:00");
    assert_eq!(
        render_path(&p.history.as_ref().unwrap().path, &vars).unwrap(),
        "/ticket/12/history?fields=Type,Creator,Created,Field,OldValue,NewValue&page=2&per_page=100"
    );
    assert_eq!(
        render_path(&p.entry_content.as_ref().unwrap().path, &vars).unwrap(),
        "/transaction/52/attachments?fields=ContentType,Filename,ContentLength&per_page=100"
    );
}

#[test]
fn entry_text_is_the_first_plain_part_and_set_at_makes_the_path() {
    let p = profile();
    let c = p.entry_content.as_ref().unwrap();
    let a: Value = serde_json::from_str(ATTACHMENTS).unwrap();
    assert_eq!(
        content_text(c, &a, None).as_deref(),
        Some("We ordered the part.")
    );
    let html_only =
        serde_json::json!({"items": [{"ContentType": "text/html", "Content": "<p>x</p>"}]});
    assert_eq!(content_text(c, &html_only, None), None);
    // a text file attached is not the comment's text
    let file_first = serde_json::json!({"items": [
        {"ContentType": "text/plain", "Filename": "readings.txt", "Content": "12.5 kg"},
        {"ContentType": "text/plain", "Filename": "", "Content": "Readings attached"}]});
    assert_eq!(
        content_text(c, &file_first, Some("/Filename")).as_deref(),
        Some("Readings attached")
    );
    let charset = serde_json::json!({"items": [{"ContentType": "text/plain; charset=utf-8", "Content": "x"}]});
    assert_eq!(content_text(c, &charset, None).as_deref(), Some("x"));
    let mut v = serde_json::json!({"id": "1"});
    set_at(&mut v, "/a/b", Value::String("t".into()));
    assert_eq!(v, serde_json::json!({"id": "1", "a": {"b": "t"}}));
}
