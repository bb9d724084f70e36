//! The e-mail connector against real mail servers: a private SMTP server
//! (aiosmtpd) and a private dovecot IMAP server per test, started by
//! scripts/services/mail.sh on free loopback ports.
//!
//! The partner is a person with a mailbox: the tests read what deskbridge
//! mailed them straight from their Maildir, and answer with raw mails sent
//! over SMTP to deskbridge's mailbox, as a mail client would.

use crate::common::mail::MailServer;
use crate::common::{eventually, Gateway, Party};
use deskbridge::event::{Audience, Status};
use deskbridge::tools::sample_desk::DeskTicket;

fn b64(s: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// RFC 2047 in windows-1251, as Outlook writes Cyrillic subjects.
fn cp1251_word(s: &str) -> String {
    let bytes: Vec<u8> = s.chars().map(cp1251).collect();
    format!("=?windows-1251?B?{}?=", b64(&bytes))
}

/// windows-1251 for the letters these tests use.
fn cp1251(c: char) -> u8 {
    match c {
        'А'..='я' => (c as u32 - 'А' as u32 + 0xC0) as u8,
        'ё' => 0xB8,
        'Ё' => 0xA8,
        c if c.is_ascii() => c as u8,
        other => panic!("no windows-1251 byte for {other:?} in this test"),
    }
}

fn cp1251_text(s: &str) -> Vec<u8> {
    s.chars().map(cp1251).collect()
}

/// The vendor's reply: a windows-1251 subject and body, a quote, a
/// signature, a file with a Cyrillic name and a status line.
fn partner_reply(token: &str, answers: &str, msg_id: &str) -> String {
    let body = "Заменили датчик веса.\nВесы откалиброваны, акт во вложении.\n#статус решено\n\n-- \nИван Петров\nКонтосо, сервис\n\nАкме пишет:\n> Весы показывают неверный вес\n> Сайт: магазин 12\n";
    let body = cp1251_text(&body.replace('\n', "\r\n"));
    format!(
        "From: {name} <vendor@localhost>\nTo: agent@localhost\nSubject: {subject}\nDate: Mon, 23 Nov 2026 11:00:00 +0300\nMessage-ID: <{msg_id}>\nIn-Reply-To: <{answers}>\nReferences: <{answers}>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=windows-1251\nContent-Transfer-Encoding: base64\n\n{body}\n--b1\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: attachment; filename*=windows-1251''%E0%EA%F2.txt\nContent-Transfer-Encoding: base64\n\n{file}\n--b1--\n",
        name = cp1251_word("Иван Петров"),
        subject = cp1251_word(&format!("Re: [{token}] Весы врут")),
        body = b64(&body),
        file = b64("акт подписан".as_bytes()),
    )
}

fn relayed(t: &DeskTicket) -> Vec<&deskbridge::tools::sample_desk::DeskComment> {
    t.comments.iter().filter(|c| c.event.is_some()).collect()
}

const PARTIES: &str = r#"
[parties.acme]
name = "Acme Service"
role = "service_company"
[parties.contoso]
name = "Contoso Scales"
role = "vendor"
[parties.chain]
name = "Fresh Foods"
role = "client"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_crosses_to_a_mail_partner_and_its_reply_comes_back_clean() {
    let mail = MailServer::start();
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"desk\"\nto = \"vendor\"\n",
        desk.toml(
            dir.path(),
            "acme",
            "allowed_fields = [\"description\", \"site\", \"equipment\", \"attachments\"]"
        ),
        mail.endpoint(
            dir.path(),
            "vendor",
            "contoso",
            "agent",
            "partner = [\"Contoso Support <vendor@localhost>\"]\nallowed_senders = [\"boss@localhost\"]",
            ""
        ),
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);

    let t = desk.desk.create_ticket(
        "Весы врут",
        "Scale SC-200 shows 3% too much since the power cut.",
        &[
            ("site", "Shop 12, Main St"),
            ("equipment", "SC-200 #4471"),
            ("client_phone", "+7 900 111 22 33"),
        ],
        "Dana",
    );
    desk.desk.comment(
        &t,
        "Premium SLA, do not tell the vendor",
        Audience::Internal,
        "Dana",
        &[],
    );
    desk.desk
        .comment(&t, "Client: please hurry", Audience::Public, "Dana", &[]);
    desk.desk.comment(
        &t,
        "Calibration log attached",
        Audience::Partner,
        "Dana",
        &[("calib.log", b"offset=+3%\n")],
    );
    eventually(
        "the transfer and the partner comment are mailed",
        30,
        || async { mail.mails("vendor").len() >= 2 },
    )
    .await;
    // Nothing else comes: the internal note and the client conversation stay.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got = mail.mails("vendor");
    assert_eq!(
        got.len(),
        2,
        "{:#?}",
        got.iter().map(|m| &m.0.subject).collect::<Vec<_>>()
    );
    let (first, first_raw, _) = &got[0];
    let (second, second_raw, _) = &got[1];
    let token = first.subject[1..first.subject.find(']').unwrap()].to_string();
    assert!(token.starts_with("DB-"), "{}", first.subject);
    assert_eq!(first.subject, format!("[{token}] Весы врут"));
    assert_eq!(first.message_id, format!("deskbridge.{token}@acme.test"));
    assert!(
        first.text.contains("Scale SC-200 shows 3%"),
        "{}",
        first.text
    );
    assert!(
        first.text.contains("Site: Shop 12, Main St"),
        "{}",
        first.text
    );
    assert!(
        first.text.contains("Equipment: SC-200 #4471"),
        "{}",
        first.text
    );
    assert_eq!(second.subject, format!("Re: [{token}] Весы врут"));
    assert_eq!(second.answers.first(), Some(&first.message_id));
    assert!(
        second.text.contains("Calibration log attached"),
        "{}",
        second.text
    );
    assert_eq!(second.files.len(), 1);
    assert_eq!(second.files[0].name, "calib.log");
    assert_eq!(second.files[0].bytes, b"offset=+3%\n");
    for raw in [first_raw, second_raw] {
        for secret in ["Premium SLA", "please hurry", "+7 900 111 22 33"] {
            assert!(!raw.contains(secret), "{secret:?} was mailed:\n{raw}");
        }
    }

    // Mail that must not become a comment, sent before the real reply (the
    // mailbox is read in order, so once the reply is in, these were read).
    let ooo = format!(
        "From: vendor@localhost\nTo: agent@localhost\nSubject: Out of office: [{token}] Весы врут\nMessage-ID: <ooo@localhost>\nAuto-Submitted: auto-replied\nIn-Reply-To: <{}>\n\nAway until Monday.\n#status resolved\n",
        second.message_id
    );
    let bounce = format!(
        "From: MAILER-DAEMON@localhost\nTo: agent@localhost\nSubject: Undelivered Mail Returned to Sender\nMessage-ID: <dsn@localhost>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n--r\nContent-Type: text/plain\n\n[{token}] could not be delivered\n--r\nContent-Type: message/delivery-status\n\nAction: failed\n--r--\n"
    );
    let stranger = format!(
        "From: stranger@localhost\nTo: agent@localhost\nSubject: Re: [{token}] Весы врут\nMessage-ID: <stranger@localhost>\nIn-Reply-To: <{}>\n\nI am not the vendor.\n#status cancelled\n",
        first.message_id
    );
    // deskbridge's own mail coming back (a partner forwarding rule, a Bcc).
    let own = second_raw.clone();
    mail.send("vendor@localhost", "agent@localhost", &ooo).await;
    mail.send("mailer-daemon@localhost", "agent@localhost", &bounce)
        .await;
    mail.send("stranger@localhost", "agent@localhost", &stranger)
        .await;
    mail.send("agent@localhost", "agent@localhost", &own).await;
    mail.send(
        "vendor@localhost",
        "agent@localhost",
        &partner_reply(&token, &second.message_id, "reply-1@localhost"),
    )
    .await;

    eventually("the vendor's reply reaches the desk", 30, || async {
        desk.desk
            .ticket(&t)
            .is_some_and(|t| t.status == Status::Resolved && !relayed(&t).is_empty())
    })
    .await;
    let ticket = desk.desk.ticket(&t).unwrap();
    let from_vendor = relayed(&ticket);
    assert_eq!(from_vendor.len(), 1, "{from_vendor:#?}\n{}", gw.log());
    let c = from_vendor[0];
    assert_eq!(
        c.body, "Заменили датчик веса.\nВесы откалиброваны, акт во вложении.",
        "the quote, the signature and the status line are cut"
    );
    assert_eq!(
        c.audience,
        Audience::Internal,
        "a partner's reply lands as an internal note"
    );
    assert_eq!(
        c.files,
        vec![("акт.txt".to_string(), "акт подписан".as_bytes().to_vec())]
    );
    assert_eq!(ticket.status, Status::Resolved);

    // The reply is flagged \Seen; what was left alone is not.
    eventually("the taken mail is flagged", 10, || async {
        mail.mails("agent")
            .iter()
            .any(|(m, _, seen)| m.message_id == "reply-1@localhost" && *seen)
    })
    .await;
    for (m, _, seen) in mail.mails("agent") {
        if m.message_id != "reply-1@localhost" {
            assert!(!seen, "{} was flagged \\Seen", m.message_id);
        }
    }
    let log = gw.log();
    assert!(
        log.contains("stranger@localhost, who is not a partner address"),
        "{log}"
    );
    assert!(!log.contains("agentpw"), "a password was logged");
    // ... and reported in the daemon's status.
    let status = gw.status().await;
    let mb = &status["mailboxes"]["vendor"];
    assert_eq!(mb["taken"], 1, "{status:#}");
    assert_eq!(
        mb["left_alone"], 2,
        "auto-reply, bounce (own mail, such as the blind copies, is not counted): {status:#}"
    );
    assert_eq!(mb["not_applied"], 1, "{status:#}");
    assert!(
        mb["last_not_applied"]
            .as_str()
            .unwrap()
            .contains("stranger@localhost"),
        "{status:#}"
    );

    // The desk's status change goes back to the partner as a reply.
    desk.desk.set_status(&t, Status::Closed, "Dana");
    eventually("the status change is mailed", 30, || async {
        mail.mails("vendor").len() == 3
    })
    .await;
    let (status_mail, _, _) = mail.mails("vendor").pop().unwrap();
    assert!(
        status_mail.text.contains("set the ticket to: closed"),
        "{}",
        status_mail.text
    );
    assert_eq!(status_mail.answers.first(), Some(&first.message_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dispatch_mailbox_creates_tickets_from_allowed_senders_and_answers_by_mail() {
    let mail = MailServer::start();
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"orders\"\nto = \"desk\"\n",
        desk.toml(dir.path(), "acme", ""),
        mail.endpoint(
            dir.path(),
            "orders",
            "chain",
            "agent",
            "dispatch = true\nallowed_senders = [\"chain@localhost\"]",
            "allowed_fields = [\"*\"]\npartner_comments = \"public\""
        ),
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);

    // A stranger's "ticket" first, then the chain's own, in KOI8-R.
    mail.send(
        "stranger@localhost",
        "agent@localhost",
        "From: stranger@localhost\nTo: agent@localhost\nSubject: Free tickets\nMessage-ID: <spam@localhost>\n\nBuy now\n",
    )
    .await;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mail/koi8r-qp.eml"
    ))
    .unwrap()
    .replace(
        "From: chain@localhost",
        "From: Fresh Foods <chain@localhost>",
    )
    .replace("\r\n", "\n");
    mail.send("chain@localhost", "agent@localhost", &fixture)
        .await;

    eventually(
        "the chain's mail becomes a ticket at the desk",
        30,
        || async { !desk.desk.tickets().is_empty() },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let tickets = desk.desk.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:#?}\n{}", gw.log());
    let t = &tickets[0];
    assert_eq!(t.subject, "Заявка: касса не печатает чек");
    assert!(
        t.description.contains("Касса 3 не печатает чеки"),
        "{}",
        t.description
    );
    assert_eq!(
        t.fields.get("requester_email").map(String::as_str),
        Some("chain@localhost")
    );

    // The desk answers publicly: the chain gets it as a reply to its mail.
    desk.desk.comment(
        &t.id,
        "Technician comes at 14:00",
        Audience::Public,
        "Dana",
        &[],
    );
    eventually("the answer is mailed to the chain", 30, || async {
        !mail.mails("chain").is_empty()
    })
    .await;
    let (answer, _, _) = mail.mails("chain").remove(0);
    assert!(
        answer.text.contains("Technician comes at 14:00"),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.answers.first().map(String::as_str),
        Some("koi8@chain.example")
    );
    assert!(
        answer.subject.contains("Заявка: касса не печатает чек"),
        "{}",
        answer.subject
    );

    // The chain's follow-up by plain reply lands on the same ticket.
    let follow = format!(
        "From: chain@localhost\nTo: agent@localhost\nSubject: {}\nMessage-ID: <follow@chain.example>\nIn-Reply-To: <{}>\n\nThanks, we will be there.\n\n> Technician comes at 14:00\n",
        "Re: thanks", answer.message_id
    );
    mail.send("chain@localhost", "agent@localhost", &follow)
        .await;
    eventually("the follow-up lands on the ticket", 30, || async {
        desk.desk.ticket(&t.id).is_some_and(|t| {
            relayed(&t)
                .iter()
                .any(|c| c.body == "Thanks, we will be there.")
        })
    })
    .await;
    assert_eq!(desk.desk.tickets().len(), 1);
}

/// Replies mailed by the partner while deskbridge is killed with SIGKILL
/// and restarted; partner notes mailed the other way at the same time.
const REPLIES: usize = 40;
const NOTES: usize = 15;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_mail_arrives_loses_and_doubles_nothing() {
    let mail = MailServer::start();
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"desk\"\nto = \"vendor\"\n",
        desk.toml(dir.path(), "acme", ""),
        mail.endpoint(
            dir.path(),
            "vendor",
            "contoso",
            "agent",
            "partner = [\"vendor@localhost\"]",
            ""
        )
        // The polling path (the other tests wait with IDLE).
        .replace("poll_secs = 1", "poll_secs = 1\nidle = false"),
    );
    let mut gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let t = desk
        .desk
        .create_ticket("Lift stuck", "Floor 3", &[], "Dana");
    eventually("the transfer is mailed", 30, || async {
        !mail.mails("vendor").is_empty()
    })
    .await;
    let root = mail.mails("vendor").remove(0).0;
    let token = root.subject[1..root.subject.find(']').unwrap()].to_string();

    let mail = std::sync::Arc::new(mail);
    let sender = {
        let mail = mail.clone();
        let (token, root_id) = (token.clone(), root.message_id.clone());
        tokio::spawn(async move {
            for i in 0..REPLIES {
                let raw = format!(
                    "From: vendor@localhost\nTo: agent@localhost\nSubject: Re: [{token}] Lift stuck\nMessage-ID: <reply-{i}@localhost>\nIn-Reply-To: <{root_id}>\n\nReply #{i:03}\n\n> Floor 3\n"
                );
                mail.send("vendor@localhost", "agent@localhost", &raw).await;
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            }
        })
    };
    for i in 0..NOTES {
        desk.desk
            .comment(&t, &format!("Note #{i:03}"), Audience::Partner, "Dana", &[]);
    }
    let mut kills = 0;
    for pause in [300u64, 700, 500, 900] {
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        gw.kill9();
        kills += 1;
        gw.spawn();
    }
    sender.await.unwrap();

    // Waits without failing: the count below names what is missing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline
        && desk
            .desk
            .ticket(&t)
            .is_none_or(|t| relayed(&t).len() < REPLIES)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eventually("every note is mailed", 60, || async {
        mail.mails("vendor")
            .iter()
            .filter(|(m, _, _)| m.text.contains("Note #"))
            .count()
            >= NOTES
    })
    .await;
    // Let anything doubled arrive before counting.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let ticket = desk.desk.ticket(&t).unwrap();
    let mut seen = [0; REPLIES];
    for c in relayed(&ticket) {
        let n: usize = c
            .body
            .strip_prefix("Reply #")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected comment {:?}", c.body));
        seen[n] += 1;
    }
    let wrong: Vec<(usize, i32)> = seen
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 1)
        .map(|(i, n)| (i, *n))
        .collect();
    assert!(
        wrong.is_empty(),
        "replies not applied exactly once (reply, times): {wrong:?}"
    );

    // Each note is one mail: a repeat after a crash may resend it, but only
    // ever under the same Message-ID.
    let mut ids: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (m, _, _) in mail.mails("vendor") {
        if let Some(at) = m.text.find("Note #") {
            let note = m.text[at..at + 9].to_string();
            ids.entry(note).or_default().insert(m.message_id.clone());
        }
    }
    assert_eq!(ids.len(), NOTES, "{ids:#?}");
    for (note, set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "{note} mailed under several Message-IDs: {set:?}"
        );
    }
    assert!(kills >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_mailbox_is_read_again_without_taking_anything_twice() {
    let mail = MailServer::start();
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"desk\"\nto = \"vendor\"\n",
        desk.toml(dir.path(), "acme", ""),
        mail.endpoint(
            dir.path(),
            "vendor",
            "contoso",
            "agent",
            "partner = [\"vendor@localhost\"]",
            ""
        ),
    );
    let mut gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let t = desk
        .desk
        .create_ticket("Door sensor", "Gate 2", &[], "Dana");
    eventually("the transfer is mailed", 30, || async {
        !mail.mails("vendor").is_empty()
    })
    .await;
    let root = mail.mails("vendor").remove(0).0;
    let token = root.subject[1..root.subject.find(']').unwrap()].to_string();
    let reply = |id: &str, text: &str| {
        format!(
            "From: vendor@localhost\nTo: agent@localhost\nSubject: Re: [{token}] Door sensor\nMessage-ID: <{id}@localhost>\nIn-Reply-To: <{}>\n\n{text}\n",
            root.message_id
        )
    };
    let bodies = |t: &DeskTicket| {
        relayed(t)
            .iter()
            .map(|c| c.body.clone())
            .collect::<Vec<_>>()
    };
    // Three mails left alone, then the answer: the cursor ends past them.
    for i in 0..3 {
        let spam = format!(
            "From: stranger@localhost\nTo: agent@localhost\nSubject: Offer {i}\nMessage-ID: <spam{i}@localhost>\n\nBuy\n"
        );
        mail.send("stranger@localhost", "agent@localhost", &spam)
            .await;
    }
    mail.send(
        "vendor@localhost",
        "agent@localhost",
        &reply("a", "First answer"),
    )
    .await;
    eventually("the first answer lands", 30, || async {
        desk.desk
            .ticket(&t)
            .is_some_and(|t| !relayed(&t).is_empty())
    })
    .await;

    // The mailbox is recreated while deskbridge is stopped, without the
    // strangers' mail: dovecot's UID list and indexes go, so UIDVALIDITY
    // and the UIDs start over, the next mail's UID below the old cursor.
    gw.terminate();
    for e in std::fs::read_dir(mail.maildir("agent")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "dovecot-uidlist" || name.starts_with("dovecot.index") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(mail.maildir("agent").join(sub)).unwrap() {
            let path = e.unwrap().path();
            if std::fs::read_to_string(&path)
                .unwrap()
                .contains("stranger@localhost")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    mail.send(
        "vendor@localhost",
        "agent@localhost",
        &reply("b", "Second answer"),
    )
    .await;
    gw.spawn();
    eventually("the second answer lands", 30, || async {
        desk.desk.ticket(&t).is_some_and(|t| relayed(&t).len() >= 2)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        bodies(&desk.desk.ticket(&t).unwrap()),
        vec!["First answer".to_string(), "Second answer".to_string()],
        "{}",
        gw.log()
    );
    assert!(gw.log().contains("UIDVALIDITY changed"), "{}", gw.log());
}

/// TLS as partners' mail servers require it: SMTP with STARTTLS and a
/// login, IMAP over TLS, both trusting a company CA given as `ca_file`;
/// without it the certificate is refused and `probe` says so.
#[tokio::test(flavor = "multi_thread")]
async fn tls_and_login_as_configured_with_a_private_ca() {
    let mail = MailServer::start_tls();
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let vendor = mail.endpoint(
        dir.path(),
        "vendor",
        "contoso",
        "agent",
        "partner = [\"vendor@localhost\"]",
        "",
    );
    let untrusted = vendor
        .replace("[endpoints.vendor", "[endpoints.untrusted")
        .replace("vendor.imap.pw", "untrusted.imap.pw")
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("untrusted.imap.pw"), "agentpw").unwrap();
    let conf = format!(
        "{PARTIES}{}{vendor}{untrusted}\n[[transfers]]\nfrom = \"desk\"\nto = \"vendor\"\n",
        desk.toml(dir.path(), "acme", ""),
    );
    let gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);

    let out = gw.cli(&["probe", "--endpoint", "vendor"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("accepts the connection and the login"),
        "{said}"
    );
    assert!(
        said.contains("IMAP localhost:") && said.contains("accepts the login as agent"),
        "{said}"
    );
    assert!(!said.contains("agentpw"), "the probe printed a password");
    let out = gw.cli(&["probe", "--endpoint", "untrusted"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(
        said.matches("FAIL").count(),
        2,
        "SMTP and IMAP refuse the CA:\n{said}"
    );
    assert!(said.to_lowercase().contains("certificate"), "{said}");

    let t = desk
        .desk
        .create_ticket("Tills offline", "All tills at shop 3.", &[], "Dana");
    eventually("the transfer is mailed over STARTTLS", 30, || async {
        !mail.mails("vendor").is_empty()
    })
    .await;
    let (first, _, _) = &mail.mails("vendor")[0];
    let token = first.subject[1..first.subject.find(']').unwrap()].to_string();
    mail.send(
        "vendor@localhost",
        "agent@localhost",
        &partner_reply(&token, &first.message_id, "tls-reply@localhost"),
    )
    .await;
    eventually("the reply is read over IMAP with TLS", 30, || async {
        desk.desk
            .ticket(&t)
            .is_some_and(|t| t.status == Status::Resolved && relayed(&t).len() == 1)
    })
    .await;
}

/// A partner with only a mailbox gets each mail once although deskbridge
/// is SIGKILLed after the SMTP server took the mail and before deskbridge
/// heard its "250" (so before it recorded the delivery): the repeat finds
/// the mail in the Sent folder and its blind copy, and does not send it
/// again.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_the_smtp_send_and_its_record_mails_nothing_twice() {
    const NOTES: usize = 3;
    let mail = MailServer::start_delayed(false, 2.0);
    let desk = Party::start("desk").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{PARTIES}{}{}\n[[transfers]]\nfrom = \"desk\"\nto = \"vendor\"\n",
        desk.toml(dir.path(), "acme", ""),
        mail.endpoint(
            dir.path(),
            "vendor",
            "contoso",
            "agent",
            "partner = [\"vendor@localhost\"]",
            ""
        ),
    );
    let mut gw = Gateway::start_with(dir, &conf);
    desk.connect(&gw);
    let arrived = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while mail.mails("vendor").len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "mail {n} did not arrive"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    };
    let t = desk
        .desk
        .create_ticket("Lift stuck", "Floor 3", &[], "Dana");
    // Delivered, the "250" not yet said: the daemon dies not knowing.
    arrived(1);
    gw.kill9();
    gw.spawn();
    for i in 0..NOTES {
        desk.desk
            .comment(&t, &format!("Note #{i:03}"), Audience::Partner, "Dana", &[]);
        arrived(i + 2);
        gw.kill9();
        gw.spawn();
    }

    // Each repeat found its mail sent: the desk's queue empties...
    eventually("every delivery is recorded", 60, || async {
        mail.mails("vendor").len() > NOTES && gw.idle().await
    })
    .await;
    let log = gw.log();
    let found = log
        .matches("its blind copy arrived, so it was sent: not sent again")
        .count()
        + log
            .matches("found in the Sent folder: sent before a restart")
            .count();
    assert!(found == NOTES + 1, "not every repeat found its mail already sent (each kill came between the delivery and its \"250\"):\n{log}");
    // ... and anything doubled would have arrived by now.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut ids: std::collections::BTreeMap<String, usize> = Default::default();
    for (m, _, _) in mail.mails("vendor") {
        *ids.entry(m.message_id).or_default() += 1;
    }
    assert_eq!(ids.len(), NOTES + 1, "a mail is missing: {ids:#?}\n{log}");
    assert!(
        ids.values().all(|n| *n == 1),
        "a mail arrived twice: {ids:#?}"
    );
    let texts: Vec<String> = mail.mails("vendor").into_iter().map(|m| m.0.text).collect();
    for i in 0..NOTES {
        assert!(
            texts.iter().any(|t| t.contains(&format!("Note #{i:03}"))),
            "Note #{i:03} is missing"
        );
    }
    // The Sent folder holds each once, none left pending (\Draft).
    let sent = mail.mails_in("agent", ".Sent");
    assert_eq!(
        sent.len(),
        NOTES + 1,
        "{:?}",
        sent.iter().map(|m| &m.0.message_id).collect::<Vec<_>>()
    );
    assert!(
        sent.iter().all(|(_, _, draft)| !draft),
        "a copy is left pending"
    );
    assert!(
        !log.contains("sending it again under the same Message-ID"),
        "{log}"
    );
}
