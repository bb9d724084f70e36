//! What a transfer hands over: for each transfer rule, each field the
//! sending side allows, and where it lands in the receiving system (a
//! field of its own, the text, or nowhere and why). `deskbridge check`
//! prints it, so an operator sees before the first ticket what a partner
//! will and will not get.

use crate::config::{Config, EndpointConfig};
pub use crate::connector::kind::Lands;

/// One transfer rule's hand-over.
#[derive(Clone, Debug)]
pub struct RuleReport {
    /// Its place in `transfers`.
    pub index: usize,
    pub from: String,
    pub to: String,
    pub fields: Vec<(String, Lands)>,
    /// Fields the rule's `when` names that the sending endpoint never
    /// reads, and why: the rule never fires.
    pub never_read: Vec<(String, String)>,
}

/// Fields every transfer carries in its own place.
const BASE: [&str; 2] = ["subject", "description"];
/// Fields the report names when the allowlist is `"*"`.
const COMMON: [&str; 4] = ["description", "priority", "due", "attachments"];

/// Whether the sending endpoint ever reads `field` from its system.
fn read_at(name: &str, ep: &EndpointConfig, field: &str) -> Result<(), String> {
    if BASE.contains(&field) || field == "attachments" {
        return Ok(());
    }
    ep.connector.config().reads(name, field)
}

/// Every transfer rule's hand-over, in the order of the file.
pub fn report(config: &Config) -> Vec<RuleReport> {
    let mut out = Vec::new();
    for (index, rule) in config.transfers.iter().enumerate() {
        let (Some(from), Some(to)) = (
            config.endpoints.get(&rule.from),
            config.endpoints.get(&rule.to),
        ) else {
            continue;
        };
        let allowed = &from.policy.allowed_fields;
        let mut names: Vec<String> = if allowed.iter().any(|f| f == "*") {
            COMMON.iter().map(|s| s.to_string()).collect()
        } else {
            allowed.clone()
        };
        names.retain(|f| f != "*" && f != "author_email");
        names.dedup();
        let fields = names
            .into_iter()
            .map(|f| {
                let lands = match read_at(&rule.from, from, &f) {
                    Err(why) => Lands::Nowhere(why),
                    Ok(()) => to.connector.config().lands(&f),
                };
                (f, lands)
            })
            .collect();
        let never_read = rule
            .when
            .iter()
            .flat_map(|c| c.fields.keys())
            .filter_map(|f| {
                read_at(&rule.from, from, f)
                    .err()
                    .map(|why| (f.clone(), why))
            })
            .collect();
        out.push(RuleReport {
            index,
            from: rule.from.clone(),
            to: rule.to.clone(),
            fields,
            never_read,
        });
    }
    out
}

/// The report as `deskbridge check` prints it.
pub fn render(reports: &[RuleReport]) -> String {
    let mut s = String::new();
    for r in reports {
        s.push_str(&format!("transfer {} → {}:\n", r.from, r.to));
        if r.fields.is_empty() {
            s.push_str("  only the subject (allowed_fields is empty)\n");
        }
        let width = r.fields.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
        for (f, lands) in &r.fields {
            let where_ = match lands {
                Lands::Field(name) => format!("a field of its own ({name})"),
                Lands::Text => "the text".to_string(),
                Lands::Nowhere(why) => format!("NOWHERE: {why}"),
            };
            s.push_str(&format!("  {f:width$}  → {where_}\n"));
        }
        for (f, why) in &r.never_read {
            s.push_str(&format!(
                "  NEVER FIRES: its condition names {f}, which {} never reads: {why}\n",
                r.from
            ));
        }
    }
    s
}

/// The rules that can never fire, one line each (`deskbridge check`
/// fails on them).
pub fn never_firing(reports: &[RuleReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| {
            r.never_read.iter().map(move |(f, why)| {
                format!(
                    "transfers[{}].when.fields.{f}: the rule never fires: {why}",
                    r.index
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_allowed_field_is_placed_texted_or_said_missing() {
        let toml = r#"
[parties.svc]
name = "Service Co"
role = "service_company"
[parties.vendor]
name = "Vendor"
role = "vendor"
[endpoints.svc]
party = "svc"
kind = "rest"
policy.allowed_fields = ["description", "priority", "due", "site", "contract"]
[endpoints.svc.rest]
profile = "rt"
base_url = "http://127.0.0.1:1"
project = "General"
credentials = { env = "NOPE" }
custom_fields = { site = "4", contract = "5" }
[endpoints.vendor]
party = "vendor"
kind = "rest"
[endpoints.vendor.rest]
profile = "redmine"
base_url = "http://127.0.0.1:2"
project = "p"
credentials = { env = "NOPE" }
custom_fields = { site = "1" }
[[transfers]]
from = "svc"
to = "vendor"
"#;
        let config: Config = toml::from_str(toml).unwrap();
        let r = report(&config);
        let got: Vec<(String, Lands)> = r[0].fields.clone();
        assert_eq!(
            got,
            vec![
                ("description".into(), Lands::Field("description".into())),
                ("priority".into(), Lands::Field("priority".into())),
                ("due".into(), Lands::Field("due".into())),
                ("site".into(), Lands::Field("custom field 1".into())),
                ("contract".into(), Lands::Text),
            ]
        );
        let mut config = config;
        let svc = config.endpoints.get_mut("svc").unwrap();
        if let crate::config::Connector::Rest(r) = &mut svc.connector {
            r.custom_fields.remove("contract");
        }
        let r = report(&config);
        assert!(
            matches!(&r[0].fields[4].1, Lands::Nowhere(why) if why.contains("custom_fields.contract"))
        );
        assert!(render(&r).contains("contract     → NOWHERE"));
    }

    #[test]
    fn a_rule_on_a_field_the_sender_never_reads_never_fires_and_is_named() {
        let toml = r#"
[parties.svc]
name = "Service Co"
role = "service_company"
[parties.vendor]
name = "Vendor"
role = "vendor"
[endpoints.svc]
party = "svc"
kind = "rest"
[endpoints.svc.rest]
profile = "rt"
base_url = "http://127.0.0.1:1"
project = "General"
credentials = { env = "NOPE" }
custom_fields = { site = "4" }
[endpoints.vendor]
party = "vendor"
kind = "webhook"
[endpoints.vendor.webhook]
url = "http://127.0.0.1:2"
outbound_secret = { env = "NOPE" }
[[transfers]]
from = "svc"
to = "vendor"
when = { fields = { site = "Leeds", priority = "urgent" } }
[[transfers]]
from = "svc"
to = "vendor"
when = { fields = { equipment = "Scale DIGI SM-120" } }
"#;
        let config: Config = toml::from_str(toml).unwrap();
        let r = report(&config);
        assert!(r[0].never_read.is_empty(), "{:?}", r[0].never_read);
        assert_eq!(r[1].never_read.len(), 1);
        let never = never_firing(&r);
        assert_eq!(never.len(), 1, "{never:?}");
        assert!(
            never[0].starts_with("transfers[1].when.fields.equipment: the rule never fires")
                && never[0].contains("endpoints.svc.rest.custom_fields.equipment"),
            "{never:?}"
        );
        assert!(render(&r).contains("NEVER FIRES"), "{}", render(&r));
    }
}
