//! Where a profile comes from: the profiles shipped with deskbridge (by
//! name) or a profile file, parsed and checked.

use super::error::ProfileError;
use super::model::Profile;
use std::path::Path;

/// Profiles shipped with deskbridge, by the name `profile = "..."` uses.
const SHIPPED: &[(&str, &str)] = &[
    (
        "redmine",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/redmine.toml"
        )),
    ),
    (
        "rt",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors/rt.toml")),
    ),
    (
        "zendesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/zendesk.toml"
        )),
    ),
    (
        "freshdesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/freshdesk.toml"
        )),
    ),
    (
        "servicenow",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/servicenow.toml"
        )),
    ),
    (
        "zammad",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/zammad.toml"
        )),
    ),
    (
        "jira-sm",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/jira-sm.toml"
        )),
    ),
    (
        "glpi",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors/glpi.toml")),
    ),
    (
        "django-helpdesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/django-helpdesk.toml"
        )),
    ),
    (
        "okdesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/okdesk.toml"
        )),
    ),
];

pub fn shipped_names() -> Vec<&'static str> {
    SHIPPED.iter().map(|(n, _)| *n).collect()
}

impl Profile {
    /// A shipped profile by name, or a profile file.
    pub fn load(name: Option<&str>, file: Option<&Path>) -> Result<Profile, ProfileError> {
        let text = match (name, file) {
            (Some(n), None) => SHIPPED
                .iter()
                .find(|(s, _)| *s == n)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| ProfileError::NotShipped {
                    name: n.into(),
                    shipped: shipped_names(),
                })?,
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
                    path: path.into(),
                    source,
                })?
            }
            (Some(_), Some(_)) => return Err(ProfileError::Both),
            (None, None) => {
                return Err(ProfileError::Neither {
                    shipped: shipped_names(),
                })
            }
        };
        Profile::parse(&text)
    }

    /// Parses and checks a profile; problems are named by their path in it.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let de = toml::Deserializer::new(text);
        let p: Profile =
            serde_path_to_error::deserialize(de).map_err(|e| ProfileError::Syntax {
                path: e.path().to_string(),
                message: e.into_inner().message().trim().to_string(),
            })?;
        let problems = p.problems();
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(ProfileError::Problems { problems })
        }
    }
}
