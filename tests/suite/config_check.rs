//! `deskbridge check` on the shipped examples and on broken files, and the
//! published JSON Schemas against the code.

use std::process::Command;

/// Every secret the examples name, set to a fresh valid value.
const SECRET_VARS: &[&str] = &[
    "RETAIL_IN_SECRET",
    "RETAIL_OUT_SECRET",
    "ACME_IN_SECRET",
    "ACME_OUT_SECRET",
    "VENDOR_IN_SECRET",
    "VENDOR_OUT_SECRET",
    "DISPATCH_SECRET",
    "DISPATCH_SECRET_NEXT",
    "DISPATCH_OUT_SECRET",
    "DESK_IN_SECRET",
    "DESK_OUT_SECRET",
    "ACME_DESK_IN",
    "ACME_DESK_OUT",
    "TO_CONTOSO",
    "FROM_CONTOSO",
    "DESKBRIDGE_RT_TOKEN",
    "DESKBRIDGE_REDMINE_KEY",
    "MAIL_SMTP_PASSWORD",
    "MAIL_IMAP_PASSWORD",
];

fn check(path: &std::path::Path, with_secrets: bool) -> std::process::Output {
    let mut cmd = Command::new(crate::common::BIN);
    cmd.args(["check", "--config"]).arg(path);
    for v in SECRET_VARS {
        if with_secrets {
            cmd.env(
                v,
                deskbridge::connector::webhook::sign::Secret::generate().1,
            );
        } else {
            cmd.env_remove(v);
        }
    }
    cmd.output().unwrap()
}

#[test]
fn every_example_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let out = check(&path, true);
        assert!(
            out.status.success(),
            "{} is invalid:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Without its secrets, each example names the missing variables.
        let out = check(&path, false);
        assert!(
            !out.status.success(),
            "{} passed without secrets",
            path.display()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("environment variable"), "{err}");
    }
    assert!(n >= 3, "expected the examples, found {n}");
}

#[test]
fn broken_config_names_every_problem_by_path_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"
[daemon]
admin_listen = "nowhere"

[parties.acme]
name = "Acme"
role = "service_company"

[endpoints.vendor]
party = "contoso"
kind = "webhook"
[endpoints.vendor.webhook]
url = "not a url"
outbound_secret = { file = "/nonexistent/secret" }

[[transfers]]
from = "vendor"
to = "vendor"
"#,
    )
    .unwrap();
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "daemon.admin_listen",
        "endpoints.vendor.party: no party \"contoso\"",
        "endpoints.vendor.webhook.url: not a URL",
        "endpoints.vendor.webhook.outbound_secret: cannot read secret file /nonexistent/secret",
        "transfers[0]: from and to are the same endpoint",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn a_transfer_rule_on_a_field_never_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rule.toml");
    let token = dir.path().join("rt.token");
    std::fs::write(&token, "1-2-3").unwrap();
    let secret = dir.path().join("out.secret");
    std::fs::write(
        &secret,
        deskbridge::connector::webhook::sign::Secret::generate().1,
    )
    .unwrap();
    let config = |custom_fields: &str| {
        format!(
            r#"
[parties.svc]
name = "Service Co"
role = "service_company"
[parties.vendor]
name = "Vendor"
role = "vendor"
[endpoints.rt]
party = "svc"
kind = "rest"
service_account = "deskbridge"
[endpoints.rt.rest]
profile = "rt"
base_url = "http://127.0.0.1:9/REST/2.0"
project = "General"
credentials = {{ file = "{}" }}
{custom_fields}
[endpoints.vendor]
party = "vendor"
kind = "webhook"
[endpoints.vendor.webhook]
url = "http://127.0.0.1:9/hooks"
outbound_secret = {{ file = "{}" }}

[[transfers]]
from = "rt"
to = "vendor"
when = {{ fields = {{ equipment = "Scale DIGI SM-120", priority = "Urgent" }} }}
"#,
            token.display(),
            secret.display()
        )
    };
    std::fs::write(&path, config("")).unwrap();
    let out = check(&path, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("transfers[0].when.fields.equipment: the rule never fires")
            && err.contains("endpoints.rt.rest.custom_fields.equipment"),
        "{err}"
    );
    assert!(
        !err.contains("fields.priority"),
        "RT reads the priority: {err}"
    );
    // Named where RT keeps it: the rule can fire.
    std::fs::write(&path, config("custom_fields = { equipment = \"2\" }")).unwrap();
    let out = check(&path, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_field_and_wrong_type_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[parties.acme]\nname = \"Acme\"\nrole = \"service_company\"\n\n[endpoints.desk]\nparty = \"acme\"\nkind = \"webhook\"\nconcurency = 3\n",
    )
    .unwrap();
    let out = check(&path, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("endpoints.desk"), "{err}");
    assert!(err.contains("concurency"), "{err}");

    std::fs::write(
        &path,
        "[parties.acme]\nname = \"Acme\"\nrole = \"wholesaler\"\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&check(&path, false).stderr).to_string();
    assert!(err.contains("parties.acme.role"), "{err}");
}

#[test]
fn secrets_never_appear_in_check_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("s");
    // Not a valid whsec_ secret: the error must not quote it.
    std::fs::write(&secret_file, "whsec_!!!notbase64-TOPSECRET!!!").unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[parties.a]\nname = \"A\"\nrole = \"vendor\"\n[endpoints.e]\nparty = \"a\"\nkind = \"webhook\"\n[endpoints.e.webhook]\ninbound_secrets = [{{ file = \"{}\" }}]\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let out = check(&path, false);
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("endpoints.e.webhook.inbound_secrets[0]"),
        "{all}"
    );
    assert!(!all.contains("TOPSECRET"), "{all}");
}

#[test]
fn published_schemas_match_the_code() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    for (name, text) in deskbridge::schema::all() {
        let on_disk = std::fs::read_to_string(format!("{dir}/{name}")).unwrap_or_default();
        assert!(
            on_disk == text,
            "schemas/{name} is out of date with the code: run `cargo run -- schemas schemas`"
        );
    }
}
