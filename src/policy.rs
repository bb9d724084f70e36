//! Visibility: what may leave a system, and how it lands in the partner's.
//! Pure functions over data, so they can be property-tested.

use crate::config::{Landing, PolicyConfig};
use crate::event::{Audience, Comment, Event, EventKind, PartnerRef, Ticket};

/// Which way an event travels along a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the side that handed the work over to the side that does it.
    Downstream,
    /// From the side doing the work back to the side that handed it over.
    Upstream,
}

/// The two sides of one crossing: whose rules decide what leaves, whose
/// decide how it lands.
#[derive(Clone, Copy, Debug)]
pub struct Crossing<'a> {
    pub direction: Direction,
    pub sender: &'a PolicyConfig,
    pub receiver: &'a PolicyConfig,
    /// The sending company's name, shown on what lands.
    pub sender_party: &'a str,
    /// The sending ticket is itself handed further down: in the middle of
    /// a chain, "for the partner" means the downstream partner.
    pub sender_has_downstream: bool,
}

/// The event as it may land in the receiver's system, or `None` when it
/// must stay where it is.
pub fn route(event: &Event, c: Crossing<'_>) -> Option<Event> {
    let kind = match &event.kind {
        EventKind::TicketCreated { ticket_data } => match c.direction {
            Direction::Downstream => EventKind::TicketCreated {
                ticket_data: filter_ticket(ticket_data, c.sender),
            },
            // A downstream side never hands its ticket back as a new one.
            Direction::Upstream => return None,
        },
        EventKind::Comment { comment } => EventKind::Comment {
            comment: land_comment(comment, c)?,
        },
        EventKind::StatusChanged { status } => {
            if !c.sender.share_status {
                return None;
            }
            match c.receiver.status_from_partner.get(status) {
                None => EventKind::StatusChanged { status: *status },
                Some(Some(mapped)) => EventKind::StatusChanged { status: *mapped },
                // Mapped to nothing: the receiver only wants to know.
                Some(None) => EventKind::Comment {
                    comment: Comment {
                        body: format!("{} set its ticket to {status}.", c.sender_party),
                        audience: Audience::Internal,
                        attachments: vec![],
                    },
                },
            }
        }
        EventKind::FieldChanged { field, value } => {
            // What deskbridge wrote there about the partner is not the
            // company's own content.
            if !field_allowed(c.sender, field) || is_partner_view(field) {
                return None;
            }
            EventKind::FieldChanged {
                field: field.clone(),
                value: value.clone(),
            }
        }
    };
    // A person crosses by name only where the sender allows it; otherwise
    // the receiver sees the company (the partner's name on what lands).
    let mut author = event
        .author
        .clone()
        .filter(|_| field_allowed(c.sender, "author_name"));
    if let Some(a) = &mut author {
        if !field_allowed(c.sender, "author_email") {
            a.email = None;
        }
    }
    Some(Event {
        id: event.id,
        ticket: event.ticket.clone(),
        occurred_at: event.occurred_at,
        author,
        // The receiver's echo check reads `source_id` as an id in the
        // namespace of the endpoint the event comes from, which the
        // origin's id is not: it crosses under its own name.
        source_id: None,
        origin_source_id: event
            .origin_source_id
            .clone()
            .or_else(|| event.source_id.clone()),
        partner: Some(PartnerRef {
            party: c.sender_party.to_string(),
            ticket: Some(event.ticket.clone()),
        }),
        kind,
    })
}

fn land_comment(comment: &Comment, c: Crossing<'_>) -> Option<Comment> {
    let audience = match (comment.audience, c.direction) {
        (Audience::Internal, _) => return None,
        // The upstream side's public thread is its conversation with its
        // own requester (the client).
        (Audience::Public, Direction::Downstream) if !c.sender.share_client_conversation => {
            return None
        }
        // The upstream company is the requester of the downstream ticket.
        (Audience::Public | Audience::Partner, Direction::Downstream) => Audience::Public,
        (Audience::Partner, Direction::Upstream) if c.sender_has_downstream => return None,
        (Audience::Public | Audience::Partner, Direction::Upstream) => {
            match c.receiver.partner_comments {
                Landing::Internal => Audience::Internal,
                Landing::Public => Audience::Public,
            }
        }
    };
    Some(Comment {
        body: comment.body.clone(),
        audience,
        attachments: comment.attachments.clone(),
    })
}

/// The fields where a system shows its partner's ticket (`show_partner`);
/// `upstream_*` where a ticket in the middle of a chain shows the company
/// that handed it over apart from the partner it handed it on to.
pub fn is_partner_view(field: &str) -> bool {
    matches!(
        field,
        "partner_ticket" | "partner_status" | "upstream_ticket" | "upstream_status"
    )
}

/// Whether the sending side lets this piece of ticket content leave.
/// `"*"` allows everything: for a partner gateway whose own side already
/// applied its policy.
pub fn field_allowed(policy: &PolicyConfig, field: &str) -> bool {
    policy.allowed_fields.iter().any(|f| f == field || f == "*")
}

fn filter_ticket(t: &Ticket, policy: &PolicyConfig) -> Ticket {
    let allow = |f: &str| field_allowed(policy, f);
    Ticket {
        subject: t.subject.clone(),
        description: if allow("description") {
            t.description.clone()
        } else {
            String::new()
        },
        status: t.status,
        priority: t.priority.clone().filter(|_| allow("priority")),
        due: t.due.filter(|_| allow("due")),
        fields: t
            .fields
            .iter()
            .filter(|(k, _)| allow(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        attachments: if allow("attachments") {
            t.attachments.clone()
        } else {
            vec![]
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Attachment, Author, Status};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn comment(body: &str, audience: Audience) -> Event {
        Event::new(
            "T1",
            EventKind::Comment {
                comment: Comment {
                    body: body.into(),
                    audience,
                    attachments: vec![],
                },
            },
        )
    }

    fn crossing<'a>(d: Direction, s: &'a PolicyConfig, r: &'a PolicyConfig) -> Crossing<'a> {
        Crossing {
            direction: d,
            sender: s,
            receiver: r,
            sender_party: "Vendor Ltd",
            sender_has_downstream: false,
        }
    }

    fn landed_audience(ev: Option<Event>) -> Option<Audience> {
        match ev?.kind {
            EventKind::Comment { comment } => Some(comment.audience),
            _ => None,
        }
    }

    #[test]
    fn defaults_follow_the_trade() {
        let p = PolicyConfig::default();
        let down = crossing(Direction::Downstream, &p, &p);
        let up = crossing(Direction::Upstream, &p, &p);
        assert_eq!(route(&comment("x", Audience::Internal), down), None);
        assert_eq!(route(&comment("x", Audience::Internal), up), None);
        // the client conversation stays upstream
        assert_eq!(route(&comment("x", Audience::Public), down), None);
        assert_eq!(
            landed_audience(route(&comment("x", Audience::Partner), down)),
            Some(Audience::Public)
        );
        // partner replies land as internal notes marked with the partner
        let up_ev = route(&comment("x", Audience::Public), up).unwrap();
        assert_eq!(up_ev.partner.as_ref().unwrap().party, "Vendor Ltd");
        assert_eq!(landed_audience(Some(up_ev)), Some(Audience::Internal));
    }

    #[test]
    fn in_a_chain_partner_notes_go_down_only() {
        let p = PolicyConfig::default();
        let mut up = crossing(Direction::Upstream, &p, &p);
        up.sender_has_downstream = true;
        assert_eq!(route(&comment("x", Audience::Partner), up), None);
        assert_eq!(
            landed_audience(route(&comment("x", Audience::Public), up)),
            Some(Audience::Internal)
        );
    }

    #[test]
    fn a_person_crosses_by_name_only_where_allowed() {
        let mut ev = comment("x", Audience::Partner);
        ev.author = Some(Author {
            name: "Ann Client".into(),
            email: Some("ann@client.example".into()),
        });
        let p = PolicyConfig::default();
        let out = route(&ev, crossing(Direction::Downstream, &p, &p)).unwrap();
        assert_eq!(out.author, None, "the company, not the person");
        assert_eq!(out.partner.unwrap().party, "Vendor Ltd");
        let named = PolicyConfig {
            allowed_fields: vec!["author_name".into()],
            ..PolicyConfig::default()
        };
        let out = route(&ev, crossing(Direction::Downstream, &named, &p)).unwrap();
        let a = out.author.unwrap();
        assert_eq!((a.name.as_str(), a.email), ("Ann Client", None));
    }

    #[test]
    fn rules_can_open_the_client_conversation_and_forward_replies() {
        let p = PolicyConfig {
            share_client_conversation: true,
            partner_comments: Landing::Public,
            ..PolicyConfig::default()
        };
        assert_eq!(
            landed_audience(route(
                &comment("x", Audience::Public),
                crossing(Direction::Downstream, &p, &p)
            )),
            Some(Audience::Public)
        );
        assert_eq!(
            landed_audience(route(
                &comment("x", Audience::Public),
                crossing(Direction::Upstream, &p, &p)
            )),
            Some(Audience::Public)
        );
    }

    #[test]
    fn status_mapping_is_the_receivers() {
        let sender = PolicyConfig::default();
        let mut receiver = PolicyConfig::default();
        receiver
            .status_from_partner
            .insert(Status::Resolved, Some(Status::InProgress));
        receiver.status_from_partner.insert(Status::Waiting, None);
        let c = crossing(Direction::Upstream, &sender, &receiver);
        let resolved = Event::new(
            "T1",
            EventKind::StatusChanged {
                status: Status::Resolved,
            },
        );
        assert_eq!(
            route(&resolved, c).unwrap().kind,
            EventKind::StatusChanged {
                status: Status::InProgress
            }
        );
        let waiting = Event::new(
            "T1",
            EventKind::StatusChanged {
                status: Status::Waiting,
            },
        );
        assert_eq!(
            landed_audience(route(&waiting, c)),
            Some(Audience::Internal)
        );
        let quiet = PolicyConfig {
            share_status: false,
            ..PolicyConfig::default()
        };
        assert_eq!(
            route(&resolved, crossing(Direction::Upstream, &quiet, &receiver)),
            None
        );
    }

    // ---- property: nothing forbidden ever reaches a party ----

    fn arb_audience() -> impl Strategy<Value = Audience> {
        prop_oneof![
            Just(Audience::Public),
            Just(Audience::Partner),
            Just(Audience::Internal)
        ]
    }

    const FIELD_NAMES: [&str; 11] = [
        "*",
        "description",
        "priority",
        "due",
        "attachments",
        "author_name",
        "author_email",
        "site",
        "client_phone",
        "equipment",
        "serial_number",
    ];

    fn arb_policy() -> impl Strategy<Value = PolicyConfig> {
        (
            proptest::sample::subsequence(FIELD_NAMES.to_vec(), 0..=FIELD_NAMES.len()),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            proptest::collection::btree_map(
                proptest::sample::select(Status::ALL.to_vec()),
                proptest::option::of(proptest::sample::select(Status::ALL.to_vec())),
                0..4,
            ),
        )
            .prop_map(
                |(fields, share, public, status, from_partner)| PolicyConfig {
                    allowed_fields: fields.into_iter().map(String::from).collect(),
                    share_client_conversation: share,
                    partner_comments: if public {
                        Landing::Public
                    } else {
                        Landing::Internal
                    },
                    share_status: status,
                    status_from_partner: from_partner,
                    show_partner: true,
                },
            )
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let secret = || "[a-z]{4,12}".prop_map(|s| format!("SECRET-{s}"));
        // A note's body ends apart, so that no other value (a priority
        // "SECRET-priority") holds a body ("SECRET-prio") by chance.
        let note = || "[a-z]{4,12}".prop_map(|s| format!("SECRET-{s}~note"));
        prop_oneof![
            (arb_audience(), note(), any::<bool>()).prop_map(|(a, body, with_file)| {
                let mut ev = comment(&body, a);
                ev.author = Some(Author {
                    name: "SECRET-Ann-Client".into(),
                    email: Some("ann@client.example".into()),
                });
                if with_file {
                    if let EventKind::Comment { comment } = &mut ev.kind {
                        comment.attachments.push(Attachment {
                            name: format!("{body}.txt"),
                            content_type: "text/plain".into(),
                            sha256: None,
                            size: None,
                            content_base64: None,
                        });
                    }
                }
                ev
            }),
            proptest::collection::btree_map(
                proptest::sample::select(FIELD_NAMES.to_vec()),
                secret(),
                0..6
            )
            .prop_flat_map(|m| (Just(m), 0i64..4_000_000_000, any::<bool>()))
            .prop_map(|(m, due_secs, with_file)| {
                let fields: BTreeMap<String, String> = m
                    .into_iter()
                    .filter(|(k, _)| {
                        ![
                            "description",
                            "priority",
                            "due",
                            "attachments",
                            "author_name",
                            "author_email",
                            "*",
                        ]
                        .contains(k)
                    })
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                let mut ev = Event::new(
                    "T1",
                    EventKind::TicketCreated {
                        ticket_data: Ticket {
                            subject: "Till 4 down".into(),
                            description: "SECRET-description".into(),
                            priority: Some("SECRET-priority".into()),
                            due: chrono::DateTime::from_timestamp(due_secs, 0),
                            fields,
                            attachments: if with_file {
                                vec![Attachment {
                                    name: "SECRET-ticket-file.pdf".into(),
                                    content_type: "application/pdf".into(),
                                    sha256: None,
                                    size: None,
                                    content_base64: None,
                                }]
                            } else {
                                vec![]
                            },
                            ..Ticket::default()
                        },
                    },
                );
                // The requester, as the product names who opened it.
                ev.author = Some(Author {
                    name: "SECRET-Ann-Client".into(),
                    email: Some("ann@client.example".into()),
                });
                ev
            }),
            (proptest::sample::select(FIELD_NAMES.to_vec()), secret()).prop_map(|(f, v)| {
                Event::new(
                    "T1",
                    EventKind::FieldChanged {
                        field: f.into(),
                        value: v,
                    },
                )
            }),
            proptest::sample::select(Status::ALL.to_vec())
                .prop_map(|s| Event::new("T1", EventKind::StatusChanged { status: s })),
        ]
    }

    fn arb_direction() -> impl Strategy<Value = Direction> {
        prop_oneof![Just(Direction::Downstream), Just(Direction::Upstream)]
    }

    proptest! {
        #[test]
        fn nothing_forbidden_reaches_a_party(
            events in proptest::collection::vec((arb_event(), arb_direction()), 1..40),
            sender in arb_policy(),
            receiver in arb_policy(),
            middle in any::<bool>(),
        ) {
            for (ev, dir) in &events {
                let out = route(ev, Crossing { direction: *dir, sender: &sender, receiver: &receiver, sender_party: "P", sender_has_downstream: middle });
                let Some(out) = out else { continue };
                let text = serde_json::to_string(&out).unwrap();
                match (&ev.kind, &out.kind) {
                    (EventKind::Comment { comment: inc }, EventKind::Comment { comment: outc }) => {
                        // internal notes never leave
                        prop_assert_ne!(inc.audience, Audience::Internal);
                        // the client conversation stays upstream unless shared
                        if *dir == Direction::Downstream && inc.audience == Audience::Public {
                            prop_assert!(sender.share_client_conversation);
                        }
                        // in a chain's middle, what is for the partner goes down only
                        if *dir == Direction::Upstream && middle {
                            prop_assert_eq!(inc.audience, Audience::Public);
                        }
                        // partner writes land upstream as the receiver decided
                        if *dir == Direction::Upstream && receiver.partner_comments == Landing::Internal {
                            prop_assert_eq!(outc.audience, Audience::Internal);
                        }
                    }
                    (EventKind::TicketCreated { .. }, EventKind::TicketCreated { ticket_data }) => {
                        prop_assert_eq!(*dir, Direction::Downstream);
                        for k in ticket_data.fields.keys() {
                            prop_assert!(field_allowed(&sender, k), "field {} leaked", k);
                        }
                        if !field_allowed(&sender, "description") {
                            prop_assert!(!text.contains("SECRET-description"));
                        }
                        if !field_allowed(&sender, "priority") {
                            prop_assert!(!text.contains("SECRET-priority"));
                        }
                        if !field_allowed(&sender, "due") {
                            prop_assert!(ticket_data.due.is_none(), "due time leaked");
                        }
                        if !field_allowed(&sender, "attachments") {
                            prop_assert!(!text.contains("SECRET-ticket-file"));
                        }
                    }
                    (EventKind::FieldChanged { field, .. }, _) => {
                        prop_assert!(field_allowed(&sender, field));
                    }
                    (EventKind::StatusChanged { .. }, _) => prop_assert!(sender.share_status),
                    (a, b) => prop_assert!(false, "kind changed: {:?} -> {:?}", a, b),
                }
                if !field_allowed(&sender, "author_email") || !field_allowed(&sender, "author_name") {
                    prop_assert!(!text.contains("ann@client.example"));
                }
                if !field_allowed(&sender, "author_name") {
                    prop_assert!(!text.contains("SECRET-Ann-Client"), "a person's name crossed");
                }
                // bodies of internal notes appear in nothing that crossed
                // (unless the same text was also written as a non-internal comment)
                let bodies = |internal: bool| -> Vec<&str> {
                    events.iter().filter_map(|(e, _)| match &e.kind {
                        EventKind::Comment { comment } if (comment.audience == Audience::Internal) == internal => Some(comment.body.as_str()),
                        _ => None,
                    }).collect()
                };
                let shared = bodies(false);
                for b in bodies(true) {
                    prop_assert!(!text.contains(b) || shared.contains(&b), "internal note {} crossed", b);
                }
            }
        }
    }
}
