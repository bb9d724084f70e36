//! Listing the product's changes: one page of list_changes, walked
//! forward from the first page, or back from the last page where the list
//! runs oldest change first (`list_changes.from_end`).

use crate::connector::rest::client::Answer;
use crate::connector::rest::endpoint::RestEndpoint;
use crate::connector::rest::json::{as_text, text_at, time_at};
use crate::connector::rest::profile::{FromEnd, ListRequest};
use crate::connector::rest::template::Vars;
use crate::connector::sink::SinkError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tracing::warn;

/// The most tickets one round lists from a list filtered by change time.
const MAX_LISTED: u64 = 10_000;

/// Without the product's clock (no `Date` header), deskbridge's, taken
/// this much earlier: a product's clock may be behind.
pub(super) const SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// The list's last page: not full, or no link to a next one (`list_changes.next`).
pub(super) fn last_page(lp: &ListRequest, answer: &Value, n: usize) -> bool {
    n < lp.page_size as usize
        || lp
            .next
            .as_deref()
            .is_some_and(|p| answer.pointer(p).is_none_or(Value::is_null))
}

/// A ticket listed with an update time before `from`: nothing new in it
/// (for lists the product does not filter, `list_changes.unfiltered`).
pub(super) fn listed_before(
    item: &Value,
    updated_ptr: &str,
    tf: Option<&str>,
    from: DateTime<Utc>,
) -> bool {
    time_at(item, updated_ptr, tf).is_some_and(|u| u < from)
}

/// The values of one list_changes request: changes since `from`, the page
/// at `offset`.
pub fn list_vars(ep: &RestEndpoint, from: DateTime<Utc>, offset: u64) -> Vars {
    let lp = &ep.profile.list_changes;
    ep.vars(&[
        (
            "since",
            match &lp.since_format {
                Some(f) => from.format(f).to_string(),
                None => from.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
        ),
        ("offset", offset.to_string()),
        ("page", (offset / lp.page_size as u64 + 1).to_string()),
        ("limit", lp.page_size.to_string()),
        ("last", (offset + lp.page_size as u64 - 1).to_string()),
    ])
}

/// One page of the changes since `from`, as list_changes answers it.
pub async fn list_page(
    ep: &RestEndpoint,
    from: DateTime<Utc>,
    offset: u64,
) -> Result<Answer, SinkError> {
    let lp = &ep.profile.list_changes;
    ep.client
        .call(
            "list changes",
            lp.method,
            &lp.path,
            None,
            &list_vars(ep, from, offset),
        )
        .await
}

/// What one round listed: the items oldest first, when the product
/// answered (its `Date`), how many list requests it took, and whether
/// more changes wait for the next round.
pub struct Listed {
    pub items: Vec<Value>,
    pub date: Option<DateTime<Utc>>,
    pub requests: u64,
    pub more: bool,
}

/// The items of one list_changes answer.
fn page_items(ep: &RestEndpoint, answer: &Value) -> Vec<Value> {
    let lp = &ep.profile.list_changes;
    answer
        .pointer(lp.list.as_deref().unwrap_or(&ep.profile.ticket.list))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A list that runs oldest change first, read from its last page back to
/// the first page that starts before `from` (`list_changes.from_end`): the
/// pages with changes at or after `from`, oldest first. Items added while
/// it reads only lengthen the list at its end, so the pages counted back
/// from the first answer's count keep their items.
pub async fn list_from_end(
    ep: &RestEndpoint,
    fe: &FromEnd,
    from: DateTime<Utc>,
) -> Result<Listed, SinkError> {
    list_back(ep, fe, |_| from).await
}

/// As `list_from_end`, the window's start given by the product's clock
/// (its first answer's `Date`, when it sends one).
async fn list_back(
    ep: &RestEndpoint,
    fe: &FromEnd,
    window: impl Fn(Option<DateTime<Utc>>) -> DateTime<Utc>,
) -> Result<Listed, SinkError> {
    // (The first request's `since`, if the path has one, is not filtered on.)
    let from = window(None);
    let lp = &ep.profile.list_changes;
    let updated_ptr = lp
        .updated_at
        .as_deref()
        .unwrap_or(&ep.profile.ticket.updated_at);
    let tf = ep.profile.time_format.as_deref();
    let mut vars = list_vars(ep, from, 0);
    vars.insert("page".into(), fe.last.clone());
    let answer = ep
        .client
        .call("list changes", lp.method, &lp.path, None, &vars)
        .await?;
    let count = answer
        .json
        .pointer(&fe.count)
        .and_then(|c| c.as_u64().or_else(|| as_text(c)?.parse().ok()))
        .ok_or_else(|| SinkError::Permanent {
            message: format!(
                "{}: list_changes answered without a count at {} (list_changes.from_end.count)",
                ep.name, fe.count
            ),
        })?;
    let from = window(answer.date);
    let size = u64::from(lp.page_size);
    let mut page = count.div_ceil(size).max(1);
    let mut pages = vec![page_items(ep, &answer.json)];
    let mut requests = 1;
    // Back while the oldest item read is still in the window.
    while page > 1
        && pages
            .last()
            .and_then(|p| p.first())
            .is_none_or(|t| !listed_before(t, updated_ptr, tf, from))
    {
        page -= 1;
        let a = list_page(ep, from, (page - 1) * size).await?;
        requests += 1;
        pages.push(page_items(ep, &a.json));
    }
    Ok(Listed {
        items: pages.into_iter().rev().flatten().collect(),
        date: answer.date,
        requests,
        more: false,
    })
}

/// The history entries of every ticket listed since `since` (by
/// deskbridge's clock, translated to the product's by its `Date`, a
/// minute earlier), oldest first, where the list is one of entries read
/// from its end (`list_changes.entries` and `from_end`); `None` elsewhere.
/// The sink looks for its own writes there: no ticket is read.
pub async fn recent_entries(
    ep: &RestEndpoint,
    since: DateTime<Utc>,
) -> Result<Option<Vec<Value>>, SinkError> {
    let lp = &ep.profile.list_changes;
    let (Some(fe), Some(_)) = (&lp.from_end, &lp.entries) else {
        return Ok(None);
    };
    let asked = Utc::now();
    let window = |date: Option<DateTime<Utc>>| {
        // Without the product's clock, a margin for it: its `Date` is
        // whole seconds, and a product's clock may be behind.
        let skew = date.map_or(-SKEW, |d| d - asked);
        since + skew - chrono::Duration::seconds(60)
    };
    Ok(Some(list_back(ep, fe, window).await?.items))
}

/// The list walked forward from its first page: to its end when the
/// product does not filter it, else up to a page past `since` (the
/// cursor's latest change), changes since `from`.
pub async fn list_forward(
    ep: &RestEndpoint,
    since: DateTime<Utc>,
    from: DateTime<Utc>,
) -> Result<Listed, SinkError> {
    let name = &ep.name;
    let lp = &ep.profile.list_changes;
    let tp = &ep.profile.ticket;
    let tf = ep.profile.time_format.as_deref();
    let id_ptr = lp.id.as_deref().unwrap_or(&tp.id);
    let updated_ptr = lp.updated_at.as_deref().unwrap_or(&tp.updated_at);
    let mut listed = Vec::new();
    let mut offset = 0u64;
    let mut date = None;
    let mut requests = 0;
    let mut first_of_last_page: Option<String> = None;
    let more = loop {
        let answer = list_page(ep, from, offset).await?;
        requests += 1;
        date = date.or(Some(answer.date.unwrap_or_else(|| Utc::now() - SKEW)));
        let page = page_items(ep, &answer.json);
        let n = page.len();
        // A product that ignores the paging answers the same page
        // again: what was read is taken, the rest waits for the next
        // round.
        let first = page.first().and_then(|t| text_at(t, id_ptr));
        if offset > 0 && first.is_some() && first == first_of_last_page {
            warn!(endpoint = %name, "list_changes: the product answered the same page for the next one (it ignores the paging?); going on in the next round");
            break true;
        }
        first_of_last_page = first;
        listed.extend(page);
        if last_page(lp, &answer.json, n) {
            break false;
        }
        // A full page: take it, and come back at once for the rest,
        // unless it made no progress (a page of one second's changes).
        let last = listed.last().and_then(|t| time_at(t, updated_ptr, tf));
        // An unfiltered list starts from its first page every round:
        // it is walked to the end, or later pages are never reached.
        if !lp.unfiltered && last.is_some_and(|l| l > since) {
            break true;
        }
        offset += lp.page_size as u64;
        // A filtered list this long is a second with more changes than
        // one round takes: the rest next round. An unfiltered one is
        // walked to its end however large the desk (a round that
        // stopped early would never reach the later tickets).
        if !lp.unfiltered && offset >= MAX_LISTED {
            warn!(endpoint = %name, "list_changes: {MAX_LISTED} tickets changed in one second, or the product ignores the paging; going on in the next round");
            break true;
        }
    };
    Ok(Listed {
        items: listed,
        date,
        requests,
        more,
    })
}
