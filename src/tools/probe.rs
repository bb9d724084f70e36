//! `deskbridge probe`: checks one endpoint's connectivity and credentials
//! and says, in an operator's words, what deskbridge will do there. Only
//! reads: nothing is created or changed in the partner's system.

use crate::config::{Config, EndpointConfig, Landing};
use crate::connector::rest::{self, RestEndpoint};
use crate::connector::sink::SinkError;
use chrono::{Duration as ChronoDuration, SubsecRound as _, Utc};
use serde_json::Value;
use std::fmt::Write as _;

/// Why there is nothing to probe. A check that fails is not an error:
/// it is a line of the report.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no endpoint {name:?} in the configuration (endpoints: {known})")]
    UnknownEndpoint { name: String, known: String },
    #[error("endpoints.{name}.rest: kind = \"rest\" needs it")]
    NoRestTable { name: String },
    #[error(
        "the configuration has no [bus] kind = \"amqp\": the embedded bus has no broker to probe"
    )]
    NoBroker,
    /// The `[bus]` settings that cannot be used (a CA file, a certificate).
    #[error(transparent)]
    Bus(#[from] crate::config::bus_error::BusSetupError),
}

/// What the probe found: lines to print, and whether every check passed.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub ok: bool,
}

impl Report {
    fn check(&mut self, passed: bool, text: impl Into<String>) {
        self.ok &= passed;
        self.lines.push(format!(
            "  {} {}",
            if passed { "ok  " } else { "FAIL" },
            text.into()
        ));
    }
    fn note(&mut self, text: impl Into<String>) {
        self.lines.push(format!("  -    {}", text.into()));
    }
    fn head(&mut self, text: impl Into<String>) {
        self.lines.push(text.into());
    }
}

/// Probes endpoint `name` of `config`.
pub async fn probe(config: &Config, name: &str) -> Result<Report, ProbeError> {
    let ep = config.endpoints.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.endpoints.keys().map(String::as_str).collect();
        ProbeError::UnknownEndpoint {
            name: name.to_string(),
            known: known.join(", "),
        }
    })?;
    let party = config
        .parties
        .get(&ep.party)
        .map_or(ep.party.clone(), |p| p.name.clone());
    let mut r = Report {
        ok: true,
        ..Default::default()
    };
    // A kind without a probe of its own gets its flow described only.
    if ep.rest().is_some() {
        probe_rest(name, ep, &party, &mut r).await?;
    } else if ep.webhook().is_some() {
        probe_webhook(config, name, ep, &party, &mut r).await;
    } else if ep.email().is_some() {
        probe_email(config, name, ep, &party, &mut r).await;
    } else {
        r.note(format!(
            "kind = \"{}\" has no probe: its settings are checked by `deskbridge check`",
            ep.kind().name()
        ));
    }
    describe_flow(config, name, ep, &mut r);
    Ok(r)
}

/// `deskbridge probe --bus`: reaches the broker with the configured URL
/// and TLS settings, and reads the topology passively (declares nothing).
pub async fn probe_bus(config: &Config) -> Result<Report, ProbeError> {
    use crate::bus::amqp::{Broker, Found};
    if config.bus.kind != crate::config::BusKind::Amqp {
        return Err(ProbeError::NoBroker);
    }
    let broker = Broker::new(&config.bus)?;
    let mut r = Report {
        ok: true,
        ..Default::default()
    };
    r.lines
        .push(format!("bus: RabbitMQ at {}", broker.address()));
    let conn = match broker.connect_once("probe").await {
        Ok(c) => c,
        Err(e) => {
            r.check(false, format!("connect: {e}"));
            return Ok(r);
        }
    };
    r.check(true, "connected and logged in");
    let dests = config.receivers();
    for found in broker.topology.inspect(&conn, &dests).await {
        match found {
            Found::Exchange(x) => r.check(true, format!("exchange {x}")),
            Found::Queue {
                name,
                dead: true,
                messages,
                ..
            } => r.check(
                true,
                format!("queue {name}: {messages} dead-letter copies (`deskbridge dead` lists the letters)"),
            ),
            Found::Queue {
                name,
                messages,
                consumers,
                ..
            } => {
                r.check(
                    true,
                    format!("queue {name}: {messages} messages ready, {consumers} consumers"),
                );
                if messages > 0 && consumers == 0 {
                    r.note(format!(
                        "{name} has messages and no consumer: is the daemon running?"
                    ));
                }
            }
            Found::Holder { queue, held: true } => r.check(
                true,
                format!("queue {queue}: held by a running deskbridge (another one with this bus.prefix is refused at start)"),
            ),
            Found::Holder { queue, held: false } => {
                r.note(format!("queue {queue}: no deskbridge holds it now"))
            }
            Found::Missing(x) => r.note(format!(
                "{x}: not declared yet (the daemon declares it on start)"
            )),
            Found::Refused(x, e) => r.check(false, format!("{x}: {e}")),
        }
    }
    let _ = conn.close(200, "probe done").await;
    Ok(r)
}

async fn probe_rest(
    name: &str,
    ep: &EndpointConfig,
    party: &str,
    r: &mut Report,
) -> Result<(), ProbeError> {
    let rc = ep.rest().ok_or_else(|| ProbeError::NoRestTable {
        name: name.to_string(),
    })?;
    let rest = match RestEndpoint::from_config(name, rc) {
        Ok(e) => e,
        Err(e) => {
            r.head(format!(
                "endpoint {name} ({party}), REST at {}",
                rc.base_url
            ));
            r.check(false, e.to_string());
            return Ok(());
        }
    };
    let p = &rest.profile;
    r.head(format!(
        "endpoint {name} ({party}): {} over REST at {}",
        p.product, rc.base_url
    ));
    let account = ep.service_account.clone().unwrap_or_default();
    let day_ago = (Utc::now() - ChronoDuration::hours(24)).trunc_subsecs(0);
    let lp = &p.list_changes;
    let list_changes = || rest::poll::list_page(&rest, day_ago, 0);
    // Without an identity request nothing has used the credentials yet:
    // the list of changes is what shows they are accepted.
    if p.identity.path.is_none() {
        if let Err(e) = list_changes().await {
            r.check(false, explain(&e, name));
            return Ok(());
        }
    }
    match rest.identity(&account).await {
        Ok(me) => {
            r.check(
                true,
                format!(
                    "connects, and the credentials are accepted: deskbridge acts as {:?} (user id {})",
                    me.login, me.user_id
                ),
            );
            r.check(
                me.login == account,
                if me.login == account {
                    format!("the credentials belong to service_account {account:?}: deskbridge recognises its own writes")
                } else {
                    format!(
                        "the credentials belong to {:?}, not to service_account {account:?}: set endpoints.{name}.service_account = {:?}, or deskbridge would relay its own writes back",
                        me.login, me.login
                    )
                },
            );
        }
        Err(e) => {
            r.check(false, explain(&e, name));
            // Nothing else can work without a connection and credentials.
            return Ok(());
        }
    }
    match list_changes().await {
        Ok(answer) => {
            let n = answer
                .json
                .pointer(lp.list.as_deref().unwrap_or(&p.ticket.list))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let more = if n >= lp.page_size as usize {
                " or more"
            } else {
                ""
            };
            // An unfiltered list is every ticket, not the day's changes.
            let which = if lp.entries.is_some() {
                " history entries listed (every ticket's, oldest first: read from the end back to the last change seen)"
            } else if lp.unfiltered {
                " ticket(s) listed (the product lists every ticket; those unchanged are not read)"
            } else {
                " ticket(s) changed in the last 24 hours"
            };
            r.check(
                true,
                format!("reads changes: {n}{more}{which}{}", project_words(&rest)),
            );
        }
        Err(e) => r.check(false, format!("cannot read changes: {}", explain(&e, name))),
    }
    r.head("what deskbridge does here:");
    r.note(format!(
        "creates tickets with {} {}{}",
        p.create_ticket.method.http(),
        path_only(&p.create_ticket.path),
        project_words(&rest)
    ));
    r.note(format!(
        "public comments with {} {}; internal notes with {} {}{}",
        p.add_comment.method.http(),
        path_only(&p.add_comment.path),
        p.add_internal_note.method.http(),
        path_only(&p.add_internal_note.path),
        if p.add_comment.path == p.add_internal_note.path {
            " (the same request, flagged internal)"
        } else {
            ""
        }
    ));
    r.note(match &p.files {
        None => "files: not sent (the profile has no [files]); a comment names its files instead"
            .to_string(),
        Some(f) => format!(
            "files: {}, with the comment in one request; {}",
            match (&f.upload, &f.multipart) {
                (Some(u), _) => format!(
                    "each uploaded first with {} {}",
                    u.method.http(),
                    path_only(&u.path)
                ),
                (None, Some(_)) => "sent as multipart parts".to_string(),
                (None, None) => "sent inline as base64".to_string(),
            },
            if f.read.is_some() {
                "files of the product's comments are downloaded"
            } else {
                "files of the product's comments are not read (no files.read)"
            }
        ),
    });
    let mut statuses = String::new();
    for (canonical, value) in &rest.statuses.outbound {
        let _ = write!(
            statuses,
            "{}{canonical}→{value}",
            if statuses.is_empty() { "" } else { ", " }
        );
    }
    r.note(format!(
        "sets statuses ({statuses}) and reads each change back, so a refused change is never recorded as done"
    ));
    r.note(format!(
        "looks for changes every {} s{}",
        rest.poll.as_secs(),
        match rc.rate_limit_per_minute {
            Some(n) if n > 0 => format!("; at most {n} requests a minute"),
            _ => String::new(),
        }
    ));
    r.note(format!(
        "a 429 or 503 with Retry-After pauses every request to the product until then{}",
        match &rest.profile.rate_limit {
            Some(q) => format!(", and so does {} at 0", q.remaining.join(" or ")),
            None => String::new(),
        }
    ));
    let how = |p: &crate::connector::rest::profile::WebhookProfile| match &p.signature {
        Some(sig) => format!("signed with it in {}", sig.header),
        None => "?token=WEBHOOK_SECRET in the URL".to_string(),
    };
    match (&rest.webhook_secret, &p.webhook) {
        (Some(_), Some(w)) => r.note(format!(
            "the product's webhooks at /hooks/{name} ({}) make it look at once; set up {}",
            how(w),
            w.setup
        )),
        (Some(_), None) => r.note(format!(
            "webhooks at /hooks/{name}?token=WEBHOOK_SECRET make it look at once (the profile names none the product sends: an automation of the product's can call it)"
        )),
        (None, Some(w)) => r.note(format!(
            "the product can send webhooks ({}): set endpoints.{name}.rest.webhook_secret to have them make deskbridge look at once",
            how(w)
        )),
        (None, None) => {}
    }
    Ok(())
}

async fn probe_webhook(
    config: &Config,
    name: &str,
    ep: &EndpointConfig,
    party: &str,
    r: &mut Report,
) {
    r.head(format!("endpoint {name} ({party}): signed webhooks"));
    let Some(w) = ep.webhook() else {
        r.check(
            false,
            format!("endpoints.{name}.webhook: kind = \"webhook\" needs it"),
        );
        return;
    };
    if w.inbound_secrets.is_empty() {
        r.note("sends nothing to deskbridge (no inbound_secrets)");
    } else {
        let readable = w
            .inbound_secrets
            .iter()
            .filter(|s| s.resolve().is_ok())
            .count();
        for (i, s) in w.inbound_secrets.iter().enumerate() {
            if let Err(e) = s.resolve() {
                r.check(
                    false,
                    format!("endpoints.{name}.webhook.inbound_secrets[{i}]: {e}"),
                );
            }
        }
        if readable > 0 {
            r.check(
                true,
                format!(
                    "receives its events at POST http://{}/hooks/{name}, signed with {readable} secret(s){}",
                    config.daemon.listen,
                    if w.mapping.is_some() { ", mapped from its own JSON" } else { "" }
                ),
            );
        }
    }
    let Some(url) = &w.url else {
        r.note("receives nothing from deskbridge (no url): a dispatch-only system");
        return;
    };
    if let Some(s) = &w.outbound_secret {
        if let Err(e) = s.resolve() {
            r.check(
                false,
                format!("endpoints.{name}.webhook.outbound_secret: {e}"),
            );
        }
    }
    // A GET only: a signed POST would be an event the partner applies.
    let shown = url.split('?').next().unwrap_or_default();
    let client = match crate::connector::http::partner_client(w.timeout_secs) {
        Ok(c) => c,
        Err(e) => {
            r.check(false, e.to_string());
            return;
        }
    };
    match client.get(url).send().await {
        Ok(resp) => r.check(
            !resp.status().is_server_error(),
            format!(
                "{shown} answers (HTTP {} to a GET; events are POSTed){}",
                resp.status(),
                if resp.status().is_server_error() {
                    ": the partner's server is failing"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => r.check(
            false,
            format!(
                "{shown}: {}: check endpoints.{name}.webhook.url and that the partner's receiver runs",
                crate::connector::http::describe_http_error(e)
            ),
        ),
    }
}

async fn probe_email(
    config: &Config,
    name: &str,
    ep: &EndpointConfig,
    party: &str,
    r: &mut Report,
) {
    use crate::connector::email::{imap, sink::MailSink, MailEndpoint};
    let Some(e) = ep.email() else {
        r.head(format!("endpoint {name} ({party}): e-mail"));
        r.check(
            false,
            format!("endpoints.{name}.email: kind = \"email\" needs it"),
        );
        return;
    };
    r.head(format!("endpoint {name} ({party}): e-mail as {}", e.from));
    let mail = std::sync::Arc::new(MailEndpoint::from_config(name, e, &config.daemon.data_dir));
    match MailSink::new(mail.clone()) {
        Ok(sink) => match sink.test_connection().await {
            Ok(()) => r.check(
                true,
                format!(
                    "SMTP {}:{} ({:?}) accepts the connection{}",
                    e.smtp.host,
                    e.smtp.port(),
                    e.smtp.security,
                    if e.smtp.user.is_some() {
                        " and the login"
                    } else {
                        ""
                    }
                ),
            ),
            Err(m) => r.check(
                false,
                format!(
                    "{m}: check endpoints.{name}.email.smtp (host, port, security, user, password)"
                ),
            ),
        },
        Err(m) => r.check(false, m.to_string()),
    }
    match &e.imap {
        None => r.note("reads no mailbox (no imap): partners' replies are not taken"),
        Some(i) => match imap::connect(&mail).await {
            Ok(mut session) => {
                match session.examine(&i.mailbox).await {
                    Ok(mb) => r.check(
                        true,
                        format!(
                            "IMAP {}:{} accepts the login as {}; {:?} holds {} message(s)",
                            i.host,
                            i.port(),
                            i.user,
                            i.mailbox,
                            mb.exists
                        ),
                    ),
                    Err(err) => r.check(
                        false,
                        format!(
                            "IMAP {}:{}: cannot open folder {:?}: {err}: check endpoints.{name}.email.imap.mailbox",
                            i.host,
                            i.port(),
                            i.mailbox
                        ),
                    ),
                }
                let _ = session.logout().await;
            }
            Err(m) => r.check(
                false,
                format!(
                    "{m}: check endpoints.{name}.email.imap (host, port, security, user, password)"
                ),
            ),
        },
    }
    r.head("what deskbridge does here:");
    r.note(format!(
        "mails {} from {}; replies thread by Message-ID and a [token] in the subject",
        if e.partner.is_empty() {
            "nobody (no partner addresses)".to_string()
        } else {
            e.partner.join(", ")
        },
        e.from
    ));
    if e.dispatch {
        r.note("new mail from an allowed sender opens a ticket (a dispatch mailbox)");
    }
    r.note("auto-replies, bounces, mail from senders not allowed and its own mail are reported, not applied");
}

/// What flows to and from the endpoint, by the configuration's rules.
fn describe_flow(config: &Config, name: &str, ep: &EndpointConfig, r: &mut Report) {
    let to: Vec<&str> = config
        .transfers
        .iter()
        .filter(|t| t.from == name)
        .map(|t| t.to.as_str())
        .collect();
    let from: Vec<&str> = config
        .transfers
        .iter()
        .filter(|t| t.to == name)
        .map(|t| t.from.as_str())
        .collect();
    r.head("by the configuration:");
    if !to.is_empty() {
        r.note(format!("its tickets are handed to {}", to.join(", ")));
    }
    if !from.is_empty() {
        r.note(format!("it receives tickets from {}", from.join(", ")));
    }
    let pol = &ep.policy;
    r.note(format!(
        "what leaves it besides the subject: {}",
        if pol.allowed_fields.is_empty() {
            "nothing".to_string()
        } else {
            pol.allowed_fields.join(", ")
        }
    ));
    r.note(if pol.share_client_conversation {
        "its public comments (the client conversation) go to partners; internal notes never do"
    } else {
        "its internal notes and its conversation with the client stay here"
    });
    r.note(match pol.partner_comments {
        Landing::Internal => {
            "partners' comments land as internal notes, marked with the partner's name"
        }
        Landing::Public => "partners' comments land as public replies to the requester",
    });
    r.note(if pol.share_status {
        "its status changes go to partners"
    } else {
        "its status changes stay here"
    });
}

/// An error in words that say what to fix.
fn explain(e: &SinkError, name: &str) -> String {
    let m = e.to_string();
    let has = |code: &str| m.contains(&format!("answered {code}"));
    if has("401") || has("403") {
        format!("{m}\n         the credentials are refused: check endpoints.{name}.rest.credentials (and username for basic auth), and that the user may use the API")
    } else if has("404") {
        format!("{m}\n         not found: check endpoints.{name}.rest.base_url, the project, and that the product's REST API is switched on")
    } else if m.contains("cannot connect") || m.contains("no answer") {
        format!("{m}\n         check endpoints.{name}.rest.base_url and that the service runs and is reachable from here")
    } else {
        m
    }
}

fn project_words(ep: &RestEndpoint) -> String {
    ep.settings
        .get("project")
        .map(|p| format!(" in project {p:?}"))
        .unwrap_or_default()
}

/// A request path without its query (which may carry a key).
fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or_default()
}
