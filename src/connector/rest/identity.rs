//! Whom the endpoint's credentials belong to: the product's answer to its
//! identity request, or the user the settings name. The poller knows
//! deskbridge's own writes by it.

use super::endpoint::RestEndpoint;
use super::json::text_at;
use super::template;

/// Whom the credentials belong to.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user_id: String,
    pub login: String,
    /// The kind of user (`identity.kind`).
    pub kind: Option<String>,
}

impl RestEndpoint {
    /// Whom the credentials belong to, as the product says (or, for a
    /// product without such a request, as the settings name the user).
    pub async fn identity(
        &self,
        service_account: &str,
    ) -> Result<Identity, crate::connector::sink::SinkError> {
        let i = &self.profile.identity;
        let permanent = |message: String| crate::connector::sink::SinkError::Permanent { message };
        let vars = self.vars(&[("service_account", service_account.to_string())]);
        let (Some(method), Some(path)) = (i.method, &i.path) else {
            let user = i.user.as_deref().unwrap_or_default();
            let user_id = template::render_text(user, &vars)
                .map_err(|e| permanent(format!("{}: identity.user: {e}", self.name)))?;
            return Ok(Identity {
                user_id,
                login: service_account.to_string(),
                kind: i.kind.clone(),
            });
        };
        let answer = self
            .client
            .call("identity", method, path, None, &vars)
            .await?;
        match (
            text_at(&answer.json, &i.user_id),
            text_at(&answer.json, &i.login),
        ) {
            (Some(user_id), Some(login)) => Ok(Identity {
                user_id,
                login,
                kind: i.kind.clone(),
            }),
            _ => Err(permanent(format!(
                "{}: the identity answer has no user id at {} or login at {}",
                self.name, i.user_id, i.login
            ))),
        }
    }
}
