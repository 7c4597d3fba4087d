//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Angel Memory", description = "A self-hosted memory service for Omi users and their AI agents."),
    modifiers(&BearerSchemes),
    tags((name = "memories", description = "A user's memories, with versions and soft delete"),
         (name = "data", description = "Stats, audit trail, export and import"),
         (name = "conversations", description = "Conversations and tasks derived from Omi"),
         (name = "webhooks", description = "The endpoints Omi calls"),
         (name = "omi", description = "What goes to Omi, and the state of the connection"),
         (name = "admin", description = "Users, API keys, purge and the inbox (admin token)"))
)]
pub struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_key", "admin_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}
