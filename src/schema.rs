//! JSON Schemas generated from the Rust types; `tests/suite/config_check.rs` fails
//! when the files in schemas/ drift from the code.

use std::path::Path;

pub fn all() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::schema::RootSchema| {
        serde_json::to_string_pretty(&s).expect("schema serializes") + "\n"
    };
    vec![
        (
            "config.schema.json",
            pretty(schemars::schema_for!(crate::config::Config)),
        ),
        (
            "profile.schema.json",
            pretty(schemars::schema_for!(
                crate::connector::rest::profile::Profile
            )),
        ),
        ("event.schema.json", {
            let mut event = schemars::schema_for!(crate::event::Event);
            crate::event::close_schema(&mut event.schema);
            pretty(event)
        }),
    ]
}

pub fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in all() {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
