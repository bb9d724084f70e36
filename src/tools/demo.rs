//! `deskbridge demo`: the three-party story, in-process, on the embedded
//! bus, with three sample desks reached through the webhook connector.

use crate::config::Config;
use crate::connector::webhook::sign::Secret;
use crate::daemon::{self, Running};
use crate::event::{Audience, Status};
use crate::ops::TransferRequest;
use crate::tools::sample_desk::SampleDesk;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup: {0}")]
    Setup(String),
    #[error("demo check failed: {0}")]
    Check(String),
}

fn setup<E: std::fmt::Display>(e: E) -> DemoError {
    DemoError::Setup(e.to_string())
}

struct Party {
    endpoint: &'static str,
    desk: SampleDesk,
    /// deskbridge → desk
    out_secret: String,
    /// desk → deskbridge
    in_secret: String,
}

fn config_text(dir: &Path, parties: &[Party]) -> String {
    let mut t = format!(
        r#"[daemon]
data_dir = "{data}"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[parties.northwind]
name = "Northwind Retail"
role = "client"

[parties.acme]
name = "Acme Service"
role = "service_company"

[parties.contoso]
name = "Contoso Devices"
role = "vendor"

[[transfers]]
from = "retail"
to = "acme"
"#,
        data = dir.join("data").display()
    );
    for p in parties {
        let (party, policy) = match p.endpoint {
            // The chain's stores read the contractor's replies.
            "retail" => (
                "northwind",
                "allowed_fields = [\"description\", \"site\", \"equipment\"]\npartner_comments = \"public\"",
            ),
            // The vendor's "resolved" means: check the result.
            "acme" => (
                "acme",
                "allowed_fields = [\"description\", \"equipment\", \"attachments\"]\nstatus_from_partner = { resolved = \"in_progress\" }",
            ),
            _ => ("contoso", "allowed_fields = [\"description\"]"),
        };
        let in_file = dir.join(format!("{}.in.secret", p.endpoint));
        let out_file = dir.join(format!("{}.out.secret", p.endpoint));
        t.push_str(&format!(
            r#"
[endpoints.{ep}]
party = "{party}"
kind = "webhook"
service_account = "{account}"
[endpoints.{ep}.webhook]
url = "{url}"
inbound_secrets = [{{ file = "{in_file}" }}]
outbound_secret = {{ file = "{out_file}" }}
[endpoints.{ep}.policy]
{policy}
"#,
            ep = p.endpoint,
            account = crate::tools::sample_desk::SERVICE_ACCOUNT,
            url = p.desk.url(),
            in_file = in_file.display(),
            out_file = out_file.display(),
        ));
    }
    t
}

/// Runs the story, printing what each party sees; fails if anything
/// crossed that must not.
pub async fn run(out: &mut dyn std::io::Write) -> Result<(), DemoError> {
    let dir =
        std::env::temp_dir().join(format!("deskbridge-demo-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(setup)?;
    let result = story(&dir, out).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(dir: &Path, out: &mut dyn std::io::Write) -> Result<(), DemoError> {
    let mut parties = Vec::new();
    for (endpoint, name) in [
        ("retail", "Northwind dispatch"),
        ("acme", "Acme desk"),
        ("vendor", "Contoso desk"),
    ] {
        let (_, out_secret) = Secret::generate();
        let (_, in_secret) = Secret::generate();
        let desk = SampleDesk::start(name, &out_secret).await.map_err(setup)?;
        std::fs::write(dir.join(format!("{endpoint}.in.secret")), &in_secret).map_err(setup)?;
        std::fs::write(dir.join(format!("{endpoint}.out.secret")), &out_secret).map_err(setup)?;
        parties.push(Party {
            endpoint,
            desk,
            out_secret,
            in_secret,
        });
    }
    let config = Config::parse(&config_text(dir, &parties)).map_err(setup)?;
    let running = daemon::start(config, Default::default())
        .await
        .map_err(setup)?;
    for p in &parties {
        let _ = &p.out_secret;
        p.desk.connect(
            format!("http://{}/hooks/{}", running.hooks_addr, p.endpoint),
            &p.in_secret,
        );
    }
    let [retail, acme, vendor] = [&parties[0].desk, &parties[1].desk, &parties[2].desk];
    let say = |out: &mut dyn std::io::Write, s: &str| {
        let _ = writeln!(out, "{s}");
    };

    say(
        out,
        "== 1. Northwind's dispatch system sends a ticket to Acme Service (webhook)",
    );
    let r1 = retail.create_ticket(
        "Till 4 does not print receipts",
        "Store 112: the receipt printer on till 4 stopped after the update.",
        &[
            ("site", "Store 112, 5 Harbour Rd"),
            ("equipment", "TM-T88VI"),
            ("client_phone", "+44 20 7946 0000"),
        ],
        "Store manager",
    );
    quiet(&running, &parties).await?;
    let a1 = only_ticket(acme)?;
    show(out, &[(retail, &r1), (acme, &a1)]);

    say(
        out,
        "== 2. Acme answers its client, then hands the ticket to the vendor (deskbridge transfer)",
    );
    acme.comment(
        &a1,
        "We are on it; an engineer is assigned.",
        Audience::Public,
        "Dana (Acme)",
        &[],
    );
    acme.comment(
        &a1,
        "Client is on the premium SLA: 8h to fix.",
        Audience::Internal,
        "Dana (Acme)",
        &[],
    );
    quiet(&running, &parties).await?;
    let link = running
        .ops
        .transfer(&TransferRequest {
            from: "acme".into(),
            ticket: a1.clone(),
            to: "vendor".into(),
        })
        .await
        .map_err(|e| DemoError::Check(e.to_string()))?;
    say(out, &format!("   link {} created", link.id));
    quiet(&running, &parties).await?;
    let v1 = only_ticket(vendor)?;
    show(out, &[(retail, &r1), (acme, &a1), (vendor, &v1)]);

    say(out, "== 3. The vendor asks a question; Acme answers it for the partner; each writes an internal note");
    vendor.comment(
        &v1,
        "Which firmware version is on the printer?",
        Audience::Public,
        "Lee (Contoso)",
        &[],
    );
    vendor.comment(
        &v1,
        "Probably the known bug FW-311.",
        Audience::Internal,
        "Lee (Contoso)",
        &[],
    );
    quiet(&running, &parties).await?;
    acme.comment(
        &a1,
        "Firmware 2.1.4, updated last Tuesday.",
        Audience::Partner,
        "Dana (Acme)",
        &[],
    );
    quiet(&running, &parties).await?;
    show(out, &[(retail, &r1), (acme, &a1), (vendor, &v1)]);

    say(
        out,
        "== 4. The vendor attaches a fix and resolves; Acme checks and resolves for its client",
    );
    vendor.comment(
        &v1,
        "Please flash this firmware.",
        Audience::Public,
        "Lee (Contoso)",
        &[("fw-2.1.5.bin", b"\x7fFW 2.1.5 image")],
    );
    quiet(&running, &parties).await?;
    vendor.set_status(&v1, Status::Resolved, "Lee (Contoso)");
    quiet(&running, &parties).await?;
    // For Acme the vendor's "resolved" is "check the result": its own
    // ticket shows in_progress (status_from_partner), and that is what
    // climbs on to the client, not the vendor's word.
    let status_of = |desk: &SampleDesk, id: &str| desk.ticket(id).map(|t| t.status);
    if status_of(acme, &a1) != Some(Status::InProgress) {
        return Err(DemoError::Check(format!(
            "Acme's ticket is at {:?}, not in_progress as its status_from_partner maps the vendor's resolved",
            status_of(acme, &a1)
        )));
    }
    if status_of(retail, &r1) != Some(Status::InProgress) {
        return Err(DemoError::Check(format!(
            "the client's ticket is at {:?}, not Acme's in_progress",
            status_of(retail, &r1)
        )));
    }
    say(
        out,
        "   Acme's ticket: in_progress (the vendor resolved; Acme checks), and so is the client's.",
    );
    acme.comment(
        &a1,
        "Fixed with a firmware update; please confirm.",
        Audience::Public,
        "Dana (Acme)",
        &[],
    );
    acme.set_status(&a1, Status::Resolved, "Dana (Acme)");
    quiet(&running, &parties).await?;
    show(out, &[(retail, &r1), (acme, &a1), (vendor, &v1)]);

    say(out, "== Links (deskbridge links)");
    for l in running
        .ops
        .links()
        .map_err(|e| DemoError::Check(e.to_string()))?
    {
        say(
            out,
            &format!(
                "   {} ({}) #{} [{}]  ->  {} ({}) #{} [{}]",
                l.upstream.endpoint,
                l.upstream.party,
                l.upstream.ticket.unwrap_or_default(),
                l.upstream
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or("-".into()),
                l.downstream.endpoint,
                l.downstream.party,
                l.downstream.ticket.unwrap_or_default(),
                l.downstream
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or("-".into()),
            ),
        );
    }

    let checks = verify(retail, &r1, acme, &a1, vendor, &v1);
    let stopped = running.stop().await.map_err(setup);
    checks?;
    stopped?;
    say(out, "== Checks passed: internal notes stayed home, the client's conversation did not reach the vendor,");
    say(out, "   the client's phone number did not leave Northwind, the file and the statuses crossed once.");
    Ok(())
}

fn verify(
    retail: &SampleDesk,
    r1: &str,
    acme: &SampleDesk,
    a1: &str,
    vendor: &SampleDesk,
    v1: &str,
) -> Result<(), DemoError> {
    let r = retail
        .ticket(r1)
        .ok_or(DemoError::Check("retail ticket gone".into()))?;
    let a = acme
        .ticket(a1)
        .ok_or(DemoError::Check("acme ticket gone".into()))?;
    let v = vendor
        .ticket(v1)
        .ok_or(DemoError::Check("vendor ticket gone".into()))?;
    let texts = |t: &crate::tools::sample_desk::DeskTicket| -> String {
        t.comments
            .iter()
            .map(|c| c.body.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(DemoError::Check(what.into()))
        }
    };
    check(
        !texts(&r).contains("premium SLA") && !texts(&v).contains("premium SLA"),
        "Acme's internal note crossed",
    )?;
    check(
        !texts(&a).contains("FW-311") && !texts(&r).contains("FW-311"),
        "the vendor's internal note crossed",
    )?;
    check(
        !texts(&v).contains("engineer is assigned"),
        "the client conversation reached the vendor",
    )?;
    check(
        texts(&r).contains("engineer is assigned"),
        "Acme's reply did not reach the client",
    )?;
    check(
        !a.fields.contains_key("client_phone") && !v.fields.contains_key("client_phone"),
        "the client's phone crossed",
    )?;
    check(
        !v.fields.contains_key("site"),
        "the site crossed to the vendor against Acme's policy",
    )?;
    check(
        texts(&a).matches("Which firmware").count() == 1,
        "the vendor's question did not land once at Acme",
    )?;
    check(
        a.comments
            .iter()
            .any(|c| c.body.contains("Which firmware") && c.audience == Audience::Internal),
        "the vendor's question did not land as an internal note",
    )?;
    check(
        texts(&v).matches("Firmware 2.1.4").count() == 1,
        "Acme's answer did not land once at the vendor",
    )?;
    check(
        !texts(&r).contains("Firmware 2.1.4"),
        "Acme's note for the vendor reached the client",
    )?;
    check(
        a.comments
            .iter()
            .filter(|c| c.files.iter().any(|(n, _)| n == "fw-2.1.5.bin"))
            .count()
            == 1,
        "the file did not land once at Acme",
    )?;
    check(
        r.status == Status::Resolved,
        "the client's ticket is not resolved",
    )?;
    check(
        v.status == Status::Resolved,
        "the vendor's ticket is not resolved",
    )?;
    Ok(())
}

fn only_ticket(desk: &SampleDesk) -> Result<String, DemoError> {
    let ts = desk.tickets();
    match ts.as_slice() {
        [t] => Ok(t.id.clone()),
        _ => Err(DemoError::Check(format!(
            "{} has {} tickets, expected 1",
            desk.name,
            ts.len()
        ))),
    }
}

fn show(out: &mut dyn std::io::Write, desks: &[(&SampleDesk, &String)]) {
    for (d, id) in desks {
        let _ = write!(out, "   {}", d.render(id).replace('\n', "\n   "));
        let _ = writeln!(out);
    }
}

/// Waits until every desk has sent its changes and every queue is empty.
async fn quiet(running: &Running, parties: &[Party]) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut calm = 0;
    while calm < 3 {
        if Instant::now() > deadline {
            return Err(DemoError::Check(
                "deskbridge did not settle within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let unsent: usize = parties.iter().map(|p| p.desk.unsent()).sum();
        let status = running
            .ops
            .status()
            .map_err(|e| DemoError::Check(e.to_string()))?;
        let busy = status
            .destinations
            .values()
            .any(|d| d.queued > 0 || d.in_flight > 0);
        if status.dead_letters > 0 {
            return Err(DemoError::Check(format!(
                "{} dead letters",
                status.dead_letters
            )));
        }
        calm = if unsent == 0 && !busy { calm + 1 } else { 0 };
    }
    Ok(())
}
