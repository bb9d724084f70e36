//! Two companies' gateways federate through the webhook connector: Acme's
//! desk → Acme's deskbridge → Contoso's deskbridge → Contoso's desk, and
//! back, each side applying its own company's policy.

use crate::common::*;
use deskbridge::connector::webhook::sign::Secret;
use deskbridge::event::{Audience, Status};

const ACME_PARTIES: &str = r#"
[parties.acme]
name = "Acme Service"
role = "service_company"
[parties.contoso]
name = "Contoso Devices"
role = "vendor"
"#;

fn gateway_endpoint(
    dir: &std::path::Path,
    ep: &str,
    party: &str,
    url: &str,
    inbound: &str,
    outbound: &str,
) -> String {
    let inf = dir.join(format!("{ep}.gw.in"));
    let outf = dir.join(format!("{ep}.gw.out"));
    std::fs::write(&inf, inbound).unwrap();
    std::fs::write(&outf, outbound).unwrap();
    format!(
        r#"
[endpoints.{ep}]
party = "{party}"
kind = "webhook"
[endpoints.{ep}.webhook]
url = "{url}"
timeout_secs = 2
inbound_secrets = [{{ file = "{inf}" }}]
outbound_secret = {{ file = "{outf}" }}
[endpoints.{ep}.policy]
allowed_fields = ["*"]
share_client_conversation = true
partner_comments = "public"
"#,
        inf = inf.display(),
        outf = outf.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_federate_both_ways_under_each_companys_policy() {
    let acme_desk = Party::start("desk").await;
    let contoso_desk = Party::start("desk").await;
    let (_, a_to_c) = Secret::generate();
    let (_, c_to_a) = Secret::generate();
    let (a_dir, c_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_port, c_port) = (free_port(), free_port());

    let a_conf = format!(
        "{ACME_PARTIES}{}{}\n[[transfers]]\nfrom = \"desk\"\nto = \"contoso\"\nwhen = {{ fields = {{ escalate = \"contoso\" }} }}\n",
        acme_desk.toml(a_dir.path(), "acme", "allowed_fields = [\"description\", \"equipment\"]"),
        gateway_endpoint(
            a_dir.path(),
            "contoso",
            "contoso",
            &format!("http://127.0.0.1:{c_port}/hooks/acme"),
            &c_to_a,
            &a_to_c
        ),
    );
    let c_conf = format!(
        "{ACME_PARTIES}{}{}\n[[transfers]]\nfrom = \"acme\"\nto = \"desk\"\n",
        contoso_desk.toml(c_dir.path(), "contoso", ""),
        gateway_endpoint(
            c_dir.path(),
            "acme",
            "acme",
            &format!("http://127.0.0.1:{a_port}/hooks/contoso"),
            &a_to_c,
            &c_to_a
        ),
    );
    let a = Gateway::start_at(a_dir, a_port, &a_conf);
    let c = Gateway::start_at(c_dir, c_port, &c_conf);
    acme_desk.connect(&a);
    contoso_desk.connect(&c);

    // Acme's ticket, escalated by a field: crosses both gateways.
    let t = acme_desk.desk.create_ticket(
        "Scale shows wrong weight",
        "Calibration lost after power cut",
        &[("equipment", "SC-200"), ("client_phone", "+1 555 0100")],
        "Dana",
    );
    acme_desk.desk.comment(
        &t,
        "Client says it is urgent",
        Audience::Public,
        "Dana",
        &[],
    );
    acme_desk
        .desk
        .comment(&t, "Premium SLA", Audience::Internal, "Dana", &[]);
    eventually("Acme's desk reported its ticket", 10, || async {
        acme_desk.desk.unsent() == 0
    })
    .await;
    // The field change is what escalates; the desk reports it as a ticket
    // update through the canonical field_changed event.
    let mut ev = deskbridge::event::Event::new(
        &t,
        deskbridge::event::EventKind::FieldChanged {
            field: "escalate".into(),
            value: "contoso".into(),
        },
    );
    ev.author = Some(deskbridge::event::Author {
        name: "Dana".into(),
        email: None,
    });
    let resp = post_signed(
        &a.hook_url("desk"),
        &acme_desk.in_secret,
        "msg_escalate",
        now(),
        &serde_json::to_vec(&ev).unwrap(),
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

    for _ in 0..400 {
        if contoso_desk.desk.tickets().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        contoso_desk.desk.tickets().len(),
        1,
        "Contoso's desk has no ticket.\nAcme's gateway:\n{}\nContoso's gateway:\n{}",
        a.log(),
        c.log()
    );
    let ct = contoso_desk.desk.tickets().remove(0);
    assert_eq!(ct.subject, "Scale shows wrong weight");
    assert_eq!(
        ct.fields.get("equipment").map(String::as_str),
        Some("SC-200")
    );
    assert!(!ct.fields.contains_key("client_phone"), "{:?}", ct.fields);

    // Acme writes for the partner; Contoso answers publicly and internally.
    acme_desk
        .desk
        .comment(&t, "Serial number is 4471", Audience::Partner, "Dana", &[]);
    contoso_desk.desk.comment(
        &ct.id,
        "Please power-cycle and recalibrate",
        Audience::Public,
        "Lee",
        &[("steps.txt", b"1. off\n2. on\n")],
    );
    contoso_desk.desk.comment(
        &ct.id,
        "Known issue in batch 7",
        Audience::Internal,
        "Lee",
        &[],
    );
    contoso_desk
        .desk
        .set_status(&ct.id, Status::Resolved, "Lee");

    eventually("Acme sees Contoso's reply and status", 20, || async {
        let at = acme_desk.desk.ticket(&t).unwrap();
        at.status == Status::Resolved && at.comments.iter().any(|c| c.body.contains("power-cycle"))
    })
    .await;
    eventually("Contoso sees Acme's partner note", 20, || async {
        contoso_desk
            .desk
            .ticket(&ct.id)
            .unwrap()
            .comments
            .iter()
            .any(|c| c.body.contains("4471"))
    })
    .await;
    eventually("both gateways idle", 20, || async {
        a.idle().await && c.idle().await
    })
    .await;

    let at = acme_desk.desk.ticket(&t).unwrap();
    let ct = contoso_desk.desk.ticket(&ct.id).unwrap();
    let bodies = |cs: &[deskbridge::tools::sample_desk::DeskComment]| {
        cs.iter()
            .map(|c| c.body.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Each side's internal notes and Acme's client conversation stayed home.
    assert!(!bodies(&ct.comments).contains("Premium SLA"));
    assert!(!bodies(&ct.comments).contains("urgent"));
    assert!(!bodies(&at.comments).contains("batch 7"));
    // Contoso's reply landed once at Acme, as an internal note marked with
    // Contoso's name, with its file.
    let replies: Vec<_> = at
        .comments
        .iter()
        .filter(|c| c.body.contains("power-cycle"))
        .collect();
    assert_eq!(replies.len(), 1, "{:?}", at.comments);
    assert_eq!(replies[0].audience, Audience::Internal);
    assert!(
        replies[0].author.contains("Contoso Devices"),
        "{}",
        replies[0].author
    );
    assert_eq!(
        replies[0].files,
        vec![("steps.txt".to_string(), b"1. off\n2. on\n".to_vec())]
    );
    assert_eq!(bodies(&ct.comments).matches("4471").count(), 1);

    // Each gateway knows the partner's side of its link.
    let links = a.get("/links").await;
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links[0]["downstream"]["status"], "resolved", "{links}");
}
