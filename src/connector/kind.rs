//! What every connector kind's config answers, so that the config, the
//! checks and the hand-over report need not know the kinds by name.

/// Where one allowed field ends up in the receiving system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lands {
    /// In a field of the receiving product (named).
    Field(String),
    /// In the text (the description's fields block, the mail's body).
    Text,
    /// Not handed over, and why.
    Nowhere(String),
}

/// An endpoint's connector table (`[endpoints.ID.<kind>]`).
pub trait KindConfig {
    /// The table's own problems, each by its path `at`.
    fn problems(&self, at: &str, p: &mut Vec<String>);
    /// Whether deskbridge can deliver to the endpoint (it has a sink).
    fn can_receive(&self) -> bool {
        true
    }
    /// Whether the endpoint must name the login deskbridge writes as,
    /// because its own writes come back to it when it reads.
    fn needs_service_account(&self) -> bool {
        false
    }
    /// Whether the endpoint `name` ever reads `field` (beyond the subject,
    /// description and files every kind reads), or why not.
    fn reads(&self, name: &str, field: &str) -> Result<(), String>;
    /// Where `field` lands when a ticket is handed over to the endpoint.
    fn lands(&self, field: &str) -> Lands;
}
