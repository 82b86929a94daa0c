//! `/openapi.json`, generated from the handlers' types. Internal endpoints are left out: they
//! are not part of the public API (and the ingress does not route them).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::*;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Chatons Cloud API", description = "Control plane of Chatons Cloud."),
    modifiers(&BearerAuth),
    paths(
        accounts::signup, accounts::login, accounts::logout, accounts::account, accounts::bootstrap,
        instances::register, instances::list, instances::delete,
        orgs::list, orgs::create, orgs::update, orgs::set_active, orgs::members, orgs::update_member,
        orgs::remove_member, orgs::create_invite, orgs::invites, orgs::revoke_invite,
        orgs::accept_invite,
        memory::list, memory::create, memory::search, memory::stats, memory::get, memory::update,
        memory::delete,
        admin::users, admin::update_plan, admin::update_user, admin::grant, admin::revoke_grant,
        providers::create, providers::list, providers::update, providers::delete,
        projects::create, projects::list, projects::get, projects::update, projects::delete,
        conversations::create, conversations::list, conversations::get, conversations::update,
        conversations::delete, conversations::messages, conversations::append,
    )
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
