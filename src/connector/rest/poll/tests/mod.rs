//! The shipped profiles read by the poller, on answers recorded from the
//! products; here what the tests of each product need.

mod djhd;
mod redmine;
mod rt;

use super::list::{last_page, listed_before};
use super::reader::Reader;
use crate::connector::rest::fields::Places;
use crate::connector::rest::identity::Identity;
use crate::connector::rest::json::{set_at, text_at, time_at};
use crate::connector::rest::profile::Profile;
use crate::connector::rest::template::Vars;
use crate::event::{Audience, Event, EventKind};
use chrono::{DateTime, Utc};
use serde_json::Value;

pub(super) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `p` read as the endpoint "vendor" whose service account "deskbridge"
/// has the product's user id `my_id`.
pub(super) fn read(
    p: &Profile,
    my_id: &str,
    ticket: &Value,
    entries: &[Value],
    from: &str,
) -> Vec<Event> {
    let me = Identity {
        user_id: my_id.into(),
        login: "deskbridge".into(),
        kind: None,
    };
    let r = Reader {
        endpoint: "vendor",
        profile: p,
        statuses: &p.statuses,
        places: &Places::of_profile(p),
        me: &me,
        service_account: "deskbridge",
    };
    r.events(ticket, entries, t(from))
}

pub(super) fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every product status comes back to the canonical status it came from,
/// or to one mapped to the same product status.
pub(super) fn assert_outbound_round_trips(p: &Profile) {
    for (canonical, value) in &p.statuses.outbound {
        let back = p.statuses.inbound[value];
        assert_eq!(p.statuses.outbound[&back], *value, "{canonical}");
    }
}
