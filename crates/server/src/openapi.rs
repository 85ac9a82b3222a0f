//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::routes::{admin, audience, commerce, coupons, members, stock, system, tracking};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ronghe", description = "One member, points, coupons, behaviour and stock across every channel.", license(name = "MIT OR Apache-2.0")),
    paths(
        system::healthz, system::metrics, system::openapi,
        members::register, members::get, members::lookup, members::lookup_get, members::merge, members::update,
        members::consents, members::change_consents, members::erase, members::export, members::qr_code,
        admin::create_key, admin::list_audit, admin::define_attribute, admin::list_attributes,
        commerce::put_products, commerce::get_product, commerce::put_program, commerce::get_program,
        commerce::place, commerce::quote, commerce::get_order, commerce::cancel, commerce::get_points, commerce::adjust_points, commerce::create_return, commerce::batch, commerce::expiry_run, commerce::tier_review, commerce::pay, commerce::payment_timeouts, commerce::picked, commerce::handover, commerce::ship, commerce::pickup_expiry,
        coupons::create_template, coupons::get_template, coupons::issue, coupons::scan,
        stock::put_location, stock::list_locations, stock::put_inventory, stock::get_inventory, stock::movements, stock::availability, stock::request_transfer, stock::get_transfer, stock::ship_transfer, stock::receive_transfer, stock::subscribe,
        crate::routes::webhooks::subscribe, crate::routes::webhooks::list, crate::routes::webhooks::unsubscribe,
        crate::routes::webhooks::deliveries, crate::routes::webhooks::replay, crate::routes::webhooks::dispatch,
        tracking::batch, tracking::track, tracking::identify, tracking::page, tracking::screen, tracking::alias, tracking::group,
        audience::preview, audience::create, audience::list, audience::get, audience::export,
        audience::list_tags, audience::define_tag, audience::tag_members,
        audience::rfm, audience::get_rfm_config, audience::put_rfm_config, audience::lifecycle, audience::get_lifecycle_config,
        audience::put_lifecycle_config, audience::dimension, audience::rebuild, audience::data_quality, audience::export_events, audience::get_retention, audience::put_retention, audience::timeline,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&ApiKey),
    tags((name = "members", description = "One ID: members and their identities"), (name = "consent", description = "Consent per purpose and channel"),
        (name = "catalogue", description = "Products and the price list"), (name = "orders", description = "Orders from every channel"),
        (name = "loyalty", description = "The loyalty programme and points"),
        (name = "coupons", description = "Coupon templates, issuing and scanning"),
        (name = "stock", description = "One pool of stock: locations, stock levels, availability"),
        (name = "webhooks", description = "Webhook subscriptions and deliveries"),
        (name = "tracking", description = "Behaviour events in the Segment tracking spec"),
        (name = "segments", description = "Segments answered from the audience index"),
        (name = "tags", description = "Manual and rule tags"),
        (name = "analytics", description = "RFM, lifecycle, dimensions, data quality, event exports"),
        (name = "admin", description = "Keys and audit"), (name = "system", description = "Operations")),
)]
struct ApiDoc;

struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer rh_…`"))
                    .build(),
            ),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
