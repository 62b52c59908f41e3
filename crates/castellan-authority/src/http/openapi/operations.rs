//! Every operation of the document, and the error answers they share.

use super::schemas as s;
use super::{ADMIN_SECURITY, BEARER_SECURITY, CLIENT_BASIC_SECURITY, MUTUAL_TLS_SECURITY};
use crate::http::paths;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ComponentsBuilder, Paths, Ref, RefOr, Required};
use utoipa::ToSchema;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
const HTML: &str = "text/html; charset=utf-8";

// Shared answers, in `components.responses`.
const BAD_REQUEST: &str = "BadRequest";
const UNAUTHORIZED: &str = "Unauthorized";
const INVALID_CLIENT: &str = "InvalidClient";
const FORBIDDEN: &str = "Forbidden";
const NOT_FOUND: &str = "NotFound";
const CONFLICT: &str = "Conflict";
const TOO_LARGE: &str = "PayloadTooLarge";
const UNSUPPORTED_MEDIA: &str = "UnsupportedMediaType";
const UNAVAILABLE: &str = "Unavailable";
const SERVER_ERROR: &str = "ServerError";
const REDIRECT: &str = "Redirect";
const PAGE: &str = "Page";

fn schema_ref<S: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(S::name()).into()
}

fn typed(t: Type) -> Schema {
    ObjectBuilder::new().schema_type(t).into()
}

fn error_body() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema_ref::<s::Error>())).build()
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, error_body())
}

fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(typed(Type::String))
        .description(Some(description))
        .build()
}

/// The shared error answers and pages.
pub(super) fn responses(builder: ComponentsBuilder) -> ComponentsBuilder {
    let www = "An RFC 6750 challenge, e.g. `Bearer realm=\"castellan\", error=\"invalid_token\", \
               error_description=\"...\"`; only `Bearer realm=\"castellan\"` when no token was sent.";
    builder
        .response(
            BAD_REQUEST,
            error("The request is malformed or not acceptable (`invalid_request`, or an RFC 6749 §5.2 code).")
                .build(),
        )
        .response(
            UNAUTHORIZED,
            error("No valid bearer token (`invalid_token`).")
                .header("WWW-Authenticate", header(www))
                .build(),
        )
        .response(
            INVALID_CLIENT,
            error("Client authentication failed (`invalid_client`).")
                .header(
                    "WWW-Authenticate",
                    header("`Basic realm=\"castellan\"` (RFC 6749 §5.2)."),
                )
                .build(),
        )
        .response(
            FORBIDDEN,
            error("The token lacks the scope (`insufficient_scope`) or the caller may not do this (`access_denied`).")
                .header(
                    "WWW-Authenticate",
                    header("For `insufficient_scope`: `Bearer realm=\"castellan\", error=\"insufficient_scope\", scope=\"...\"`."),
                )
                .build(),
        )
        .response(NOT_FOUND, error("No such object (`not_found`).").build())
        .response(CONFLICT, error("The state forbids it now (`conflict`).").build())
        .response(TOO_LARGE, error("The body is over the limit (`invalid_request`).").build())
        .response(UNSUPPORTED_MEDIA, error("Wrong `Content-Type` (`invalid_request`).").build())
        .response(
            UNAVAILABLE,
            error("The store cannot be reached or the endpoint is busy (`temporarily_unavailable`); retry.")
                .header("Retry-After", header("Seconds to wait, when known."))
                .build(),
        )
        .response(SERVER_ERROR, error("Our fault (`server_error`); the detail is logged, not sent.").build())
        .response(
            REDIRECT,
            ResponseBuilder::new()
                .description("A redirect; the answer is in the `Location` URL's query.")
                .header("Location", header("Where the browser goes next."))
                .build(),
        )
        .response(
            PAGE,
            ResponseBuilder::new()
                .description("A page for people (a form, a message or an error page).")
                .content(HTML, ContentBuilder::new().schema(Some(typed(Type::String))).build())
                .build(),
        )
}

fn r(name: &str) -> RefOr<Response> {
    Ref::from_response_name(name).into()
}

fn ok_json<S: ToSchema>(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(schema_ref::<S>())).build())
        .build()
}

fn ok_typed(description: &str, content_type: &str, t: Type) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(content_type, ContentBuilder::new().schema(Some(typed(t))).build())
        .build()
}

fn empty(description: &str) -> Response {
    ResponseBuilder::new().description(description).build()
}

fn json_body<S: ToSchema>(required: bool) -> Option<RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .required(Some(if required { Required::True } else { Required::False }))
            .content(JSON, ContentBuilder::new().schema(Some(schema_ref::<S>())).build())
            .build(),
    )
}

fn form_body<S: ToSchema>() -> Option<RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(FORM, ContentBuilder::new().schema(Some(schema_ref::<S>())).build())
            .build(),
    )
}

fn param(name: &str, at: ParameterIn, t: Type, description: &str) -> Parameter {
    let required = if matches!(at, ParameterIn::Path) {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(required)
        .schema(Some(typed(t)))
        .description(Some(description))
        .build()
}

fn path_param(name: &str, description: &str) -> Parameter {
    param(name, ParameterIn::Path, Type::String, description)
}

fn query(name: &str, t: Type, description: &str) -> Parameter {
    param(name, ParameterIn::Query, t, description)
}

fn op(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag)
        .summary(Some(summary))
}

/// An admin operation: the admin token, and the answers every admin call may get.
fn admin(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    op(id, tag, summary)
        .security(SecurityRequirement::new(ADMIN_SECURITY, [crate::ADMIN_SCOPE]))
        .response("401", r(UNAUTHORIZED))
        .response("403", r(FORBIDDEN))
        .response("500", r(SERVER_ERROR))
        .response("503", r(UNAVAILABLE))
}

/// An admin operation with a JSON body: its parse errors too.
fn admin_with_body(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    admin(id, tag, summary)
        .response("400", r(BAD_REQUEST))
        .response("413", r(TOO_LARGE))
        .response("415", r(UNSUPPORTED_MEDIA))
}

/// A client-authenticated OAuth endpoint taking a form.
fn client_form(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    op(id, tag, summary)
        .security(SecurityRequirement::new(CLIENT_BASIC_SECURITY, Vec::<String>::new()))
        .security(SecurityRequirement::new(MUTUAL_TLS_SECURITY, Vec::<String>::new()))
        // Credentials in the form (`client_secret_post`, `private_key_jwt`) or a public client.
        .security(SecurityRequirement::default())
        .response("400", r(BAD_REQUEST))
        .response("401", r(INVALID_CLIENT))
        .response("413", r(TOO_LARGE))
        .response("415", r(UNSUPPORTED_MEDIA))
        .response("500", r(SERVER_ERROR))
        .response("503", r(UNAVAILABLE))
}

/// A page a browser visits.
fn browser(id: &str, summary: &str) -> OperationBuilder {
    op(id, "oauth", summary)
        .response("302", r(REDIRECT))
        .response("400", r(PAGE))
}

/// Every documented operation: `(path, method, operation)`.
pub(super) fn paths() -> Paths {
    let mut p = Paths::new();
    let mut add = |path: &str, method: HttpMethod, op: OperationBuilder| {
        p.add_path_operation(path, vec![method], op.build());
    };
    use HttpMethod::{Delete, Get, Post};
    let a = |rest: &str| format!("{}{rest}", paths::ADMIN);

    // ---- discovery ----
    for (path, id) in [
        (paths::OPENID_CONFIGURATION, "getOpenidConfiguration"),
        (paths::OAUTH_METADATA, "getOauthAuthorizationServer"),
    ] {
        add(
            path,
            Get,
            op(id, "discovery", "Server metadata: every endpoint, algorithm and method").response(
                "200",
                ok_json::<s::ServerMetadata>("The metadata (OpenID Discovery / RFC 8414)."),
            ),
        );
    }
    add(
        paths::JWKS,
        Get,
        op("getJwks", "discovery", "The token signing keys (next, active, retired)").response(
            "200",
            ok_json::<s::Jwks>("The JWKS; `Cache-Control: max-age` is the configured JWKS max-age."),
        ),
    );
    add(
        paths::OPENAPI,
        Get,
        op("getOpenApiDocument", "discovery", "This document")
            .response("200", ok_typed("The OpenAPI 3.1 document.", JSON, Type::Object)),
    );

    // ---- OAuth ----
    add(
        paths::TOKEN,
        Post,
        client_form("token", "oauth", "Token endpoint (RFC 6749, RFC 8693 token exchange)")
            .description(Some(
                "Grants: `client_credentials`, `authorization_code` (PKCE S256), `refresh_token`, \
                 token exchange. Errors are RFC 6749 §5.2 (`invalid_grant`, `invalid_scope`, \
                 `invalid_target`, `unauthorized_client`, `unsupported_grant_type`).",
            ))
            .request_body(form_body::<s::TokenRequest>())
            .response("200", ok_json::<s::TokenResponse>("Tokens; `Cache-Control: no-store`.")),
    );
    add(
        paths::INTROSPECT,
        Post,
        client_form("introspect", "oauth", "Token introspection (RFC 7662)")
            .request_body(form_body::<s::IntrospectRequest>())
            .response(
                "200",
                ok_json::<s::IntrospectResponse>("The token's claims, or `{\"active\":false}`."),
            ),
    );
    add(
        paths::REVOKE,
        Post,
        client_form(
            "revoke",
            "oauth",
            "Token revocation (RFC 7009); an access token's whole session ends",
        )
        .request_body(form_body::<s::RevokeRequest>())
        .response("200", empty("Revoked, or not ours / already invalid (RFC 7009 §2.2).")),
    );
    add(
        paths::AUTHORIZE,
        Get,
        browser("authorize", "Authorization endpoint: the code flow with PKCE")
            .parameters(Some([
                query("response_type", Type::String, "`code`."),
                query("client_id", Type::String, "The app."),
                query("redirect_uri", Type::String, "A registered redirect URI."),
                query("code_challenge", Type::String, "PKCE challenge."),
                query("code_challenge_method", Type::String, "`S256`."),
                query(
                    "scope",
                    Type::String,
                    "Space-separated, e.g. `openid profile offline_access`.",
                ),
                query("state", Type::String, "Returned to the app (at most 1024 bytes)."),
                query("nonce", Type::String, "Put in the ID token (at most 256 bytes)."),
                query(
                    "audience",
                    Type::String,
                    "The service the tokens are for (or `resource`).",
                ),
                query("resource", Type::String, "RFC 8707: the same as `audience`."),
                query("prompt", Type::String, "`none`: fail rather than show the login page."),
            ]))
            .response("200", r(PAGE)),
    );
    add(
        paths::LOGIN,
        Post,
        browser("login", "The login page's form")
            .request_body(form_body::<s::LoginForm>())
            .response("200", r(PAGE))
            .response("401", r(PAGE))
            .response("403", r(PAGE))
            .response("429", r(PAGE)),
    );
    for (method, id) in [(Get, "userinfo"), (Post, "userinfoPost")] {
        add(
            paths::USERINFO,
            method,
            op(id, "oauth", "OpenID Connect userinfo")
                .security(SecurityRequirement::new(BEARER_SECURITY, Vec::<String>::new()))
                .response("200", ok_json::<s::UserInfo>("Who the person behind the token is."))
                .response("401", r(UNAUTHORIZED))
                .response("403", r(FORBIDDEN))
                .response("503", r(UNAVAILABLE)),
        );
    }
    add(
        paths::END_SESSION,
        Get,
        browser("logout", "RP-initiated logout: ends the session everywhere")
            .parameters(Some([
                query("id_token_hint", Type::String, "An ID token of the session (required)."),
                query("client_id", Type::String, "The app."),
                query(
                    "post_logout_redirect_uri",
                    Type::String,
                    "A registered post-logout URI.",
                ),
                query("state", Type::String, "Returned with the redirect."),
            ]))
            .response("200", r(PAGE)),
    );
    add(
        paths::END_SESSION,
        Post,
        browser("logoutPost", "RP-initiated logout, posted")
            .request_body(form_body::<s::LogoutForm>())
            .response("200", r(PAGE)),
    );
    add(
        paths::FEDERATION_START,
        Post,
        browser("federationStart", "Starts a sign-in at the upstream identity provider")
            .request_body(form_body::<s::FederationStartForm>())
            .response("403", r(PAGE))
            .response("404", r(PAGE))
            .response("502", r(PAGE)),
    );
    add(
        paths::FEDERATION_CALLBACK,
        Get,
        browser("federationCallback", "Where the upstream identity provider returns")
            .parameters(Some([
                query("code", Type::String, "The upstream code."),
                query("state", Type::String, "The sealed state of the sign-in."),
                query("iss", Type::String, "RFC 9207 issuer."),
                query("error", Type::String, "The upstream refused."),
            ]))
            .response("401", r(PAGE))
            .response("403", r(PAGE))
            .response("404", r(PAGE))
            .response("502", r(PAGE)),
    );

    // ---- workload identity ----
    add(
        paths::TRUST_BUNDLE,
        Get,
        op("getTrustBundlePem", "workload", "The internal CA's trust bundle").response(
            "200",
            ok_typed(
                "Every CA certificate in force, PEM.",
                "application/x-pem-file",
                Type::String,
            ),
        ),
    );
    add(
        paths::SPIFFE_BUNDLE,
        Get,
        op("getSpiffeBundle", "workload", "The trust bundle as a SPIFFE bundle")
            .response("200", ok_typed("A SPIFFE trust bundle (a JWKS).", JSON, Type::Object)),
    );
    add(
        paths::SVID,
        Post,
        op("issueSvid", "workload", "An X.509 SVID for a join token and a CSR")
            .request_body(json_body::<s::SvidRequest>(true))
            .response("200", ok_json::<s::Svid>("The SVID."))
            .response("400", r(BAD_REQUEST))
            .response("413", r(TOO_LARGE))
            .response("415", r(UNSUPPORTED_MEDIA))
            .response("503", r(UNAVAILABLE)),
    );
    add(
        paths::SVID_RENEW,
        Post,
        op(
            "renewSvid",
            "workload",
            "A new SVID, authenticated by the current one (mTLS listener only)",
        )
        .security(SecurityRequirement::new(MUTUAL_TLS_SECURITY, Vec::<String>::new()))
        .request_body(json_body::<s::SvidRenewRequest>(true))
        .response("200", ok_json::<s::Svid>("The new SVID."))
        .response("400", r(BAD_REQUEST))
        .response("401", r(INVALID_CLIENT))
        .response("503", r(UNAVAILABLE)),
    );

    // ---- revocation ----
    let resume = [
        query(
            "after",
            Type::Integer,
            "Events with a higher sequence number (default: `Last-Event-ID`, else 0).",
        ),
        param(
            "Last-Event-ID",
            ParameterIn::Header,
            Type::Integer,
            "Where to resume when `after` is absent.",
        ),
    ];
    add(
        paths::REVOCATIONS,
        Get,
        op(
            "getRevocations",
            "revocation",
            "Unexpired revocation events after a sequence number",
        )
        .parameters(Some(resume.clone()))
        .parameter(query("limit", Type::Integer, "Page size, 1 to 1000 (default 500)."))
        .response(
            "200",
            ok_json::<s::RevocationSnapshot>("The events and the newest sequence number."),
        )
        .response("400", r(BAD_REQUEST))
        .response("503", r(UNAVAILABLE)),
    );
    add(
        paths::REVOCATION_STREAM,
        Get,
        op(
            "streamRevocations",
            "revocation",
            "The live revocation stream (Server-Sent Events)",
        )
        .description(Some(
            "Every unexpired event after the resume point, then a `ready` event \
                 (`{last_seq, latest_seq, log_id}`), then live events: `revocation` (data: a \
                 RevocationEvent, SSE id: its sequence number), `keys` (`{kids}`) and `policy` \
                 (`{service, version}`). Idle streams carry keep-alive comments.",
        ))
        .parameters(Some(resume))
        .response("200", ok_typed("An SSE stream.", "text/event-stream", Type::String))
        .response("400", r(BAD_REQUEST)),
    );
    add(
        paths::HEARTBEAT,
        Post,
        op(
            "postHeartbeat",
            "revocation",
            "A verifier reports the kids it holds and how far it has read",
        )
        .request_body(json_body::<s::Heartbeat>(true))
        .response("204", empty("Recorded."))
        .response("400", r(BAD_REQUEST))
        .response("413", r(TOO_LARGE))
        .response("415", r(UNSUPPORTED_MEDIA)),
    );

    // ---- policies and decisions ----
    let service = || path_param("service", "Service name: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`.");
    add(
        paths::POLICY_BUNDLE,
        Get,
        op(
            "getPolicyBundle",
            "policies",
            "The policy version in force, signed (`typ` `castellan-policy+jwt`)",
        )
        .parameter(service())
        .response(
            "200",
            ok_typed(
                "A compact JWS signed with the token signing key.",
                "application/jwt",
                Type::String,
            ),
        )
        .response("400", r(BAD_REQUEST))
        .response("404", r(NOT_FOUND))
        .response("503", r(UNAVAILABLE)),
    );
    add(
        paths::DECISION_LOG,
        Post,
        op(
            "shipDecisions",
            "policies",
            "A service ships its authorization decisions",
        )
        .description(Some(
            "The client authenticates with HTTP Basic (`client_secret_basic`) or its certificate \
                 on the mTLS listener (the body is the batch, so no form credentials), and needs the \
                 scope `castellan.decisions:<service>`.",
        ))
        .security(SecurityRequirement::new(CLIENT_BASIC_SECURITY, Vec::<String>::new()))
        .security(SecurityRequirement::new(MUTUAL_TLS_SECURITY, Vec::<String>::new()))
        .parameter(service())
        .request_body(json_body::<s::DecisionBatch>(true))
        .response("200", ok_json::<s::DecisionsAccepted>("Stored (or a duplicate batch)."))
        .response("400", r(BAD_REQUEST))
        .response("401", r(INVALID_CLIENT))
        .response("403", r(FORBIDDEN))
        .response("413", r(TOO_LARGE))
        .response("415", r(UNSUPPORTED_MEDIA))
        .response("503", r(UNAVAILABLE)),
    );

    // ---- admin: clients, keys, revocation, verifiers ----
    let id = |what: &str| path_param("id", what);
    add(
        &a("/clients"),
        Get,
        admin("listClients", "admin", "Every client")
            .response("200", ok_json::<s::ClientList>("The clients, without secrets.")),
    );
    add(
        &a("/clients"),
        Post,
        admin_with_body("createClient", "admin", "Registers a client")
            .request_body(json_body::<s::CreateClient>(true))
            .response(
                "201",
                ok_json::<s::Client>("The client; `client_secret` is shown only now."),
            )
            .response("409", r(CONFLICT)),
    );
    add(
        &a("/clients/{id}"),
        Get,
        admin("getClient", "admin", "One client")
            .parameter(id("Client id."))
            .response("200", ok_json::<s::Client>("The client."))
            .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/clients/{id}"),
        Delete,
        admin(
            "deleteClient",
            "admin",
            "Deletes a client; its live tokens are revoked first",
        )
        .parameter(id("Client id."))
        .response("204", empty("Deleted."))
        .response("404", r(NOT_FOUND))
        .response("409", r(CONFLICT)),
    );
    add(
        &a("/clients/{id}/rotate-secret"),
        Post,
        admin("rotateClientSecret", "admin", "A new secret for a client")
            .parameter(id("Client id."))
            .response("200", ok_json::<s::Client>("The client with its new `client_secret`."))
            .response("404", r(NOT_FOUND))
            .response("409", r(CONFLICT)),
    );
    for (path, op_id, what, summary) in [
        (
            "/sessions/{id}/revoke",
            "revokeSession",
            "Session id (`sid`).",
            "Revokes a session or grant",
        ),
        (
            "/subjects/{id}/revoke",
            "revokeSubject",
            "Subject (`sub`).",
            "Revokes every token of a subject issued so far",
        ),
        (
            "/clients/{id}/revoke",
            "revokeClient",
            "Client id.",
            "Revokes every token of a client issued so far",
        ),
    ] {
        add(
            &a(path),
            Post,
            admin(op_id, "admin", summary)
                .parameter(id(what))
                .response("200", ok_json::<s::Revoked>("The revocation event verifiers receive."))
                .response("400", r(BAD_REQUEST))
                .response("404", r(NOT_FOUND)),
        );
    }
    add(
        &a("/keys"),
        Get,
        admin("listKeys", "admin", "Every signing key").response("200", ok_json::<s::KeyList>("The keys.")),
    );
    add(
        &a("/keys/rotate"),
        Post,
        admin_with_body(
            "rotateKeys",
            "admin",
            "Rotates the signing key (routine, or emergency withdrawal)",
        )
        .request_body(json_body::<s::RotateKeys>(false))
        .response(
            "200",
            ok_json::<s::KeyList>("The keys after the rotation, and verifiers that lag."),
        )
        .response("409", r(CONFLICT)),
    );
    add(
        &a("/verifiers"),
        Get,
        admin("listVerifiers", "admin", "Verifiers heard from")
            .response("200", ok_json::<s::VerifierList>("The verifiers.")),
    );

    // ---- admin: people ----
    let name = || path_param("name", "Username (or user id).");
    add(
        &a("/users"),
        Get,
        admin("listUsers", "admin-users", "Everyone").response("200", ok_json::<s::UserList>("The people.")),
    );
    add(
        &a("/users"),
        Post,
        admin_with_body("createUser", "admin-users", "Creates a person")
            .request_body(json_body::<s::CreateUser>(true))
            .response("201", ok_json::<s::User>("The person."))
            .response("409", r(CONFLICT)),
    );
    add(
        &a("/users/{name}"),
        Get,
        admin("getUser", "admin-users", "One person, with their live sessions")
            .parameter(name())
            .response("200", ok_json::<s::User>("The person."))
            .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/users/{name}"),
        Delete,
        admin("deleteUser", "admin-users", "Deletes a person; their sessions end")
            .parameter(name())
            .response("204", empty("Deleted."))
            .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/users/{name}/password"),
        Post,
        admin_with_body("setUserPassword", "admin-users", "Sets a person's password")
            .parameter(name())
            .request_body(json_body::<s::SetPassword>(true))
            .response("200", ok_json::<s::SessionsEnded>("Sessions ended, if asked."))
            .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/users/{name}/suspend"),
        Post,
        admin("suspendUser", "admin-users", "Suspends a person; their sessions end")
            .parameter(name())
            .response("200", ok_json::<s::SessionsEnded>("Sessions ended."))
            .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/users/{name}/resume"),
        Post,
        admin("resumeUser", "admin-users", "Lifts a suspension")
            .parameter(name())
            .response("200", ok_json::<s::User>("The person."))
            .response("404", r(NOT_FOUND)),
    );

    // ---- admin: workloads and the CA ----
    add(
        &a("/workloads"),
        Get,
        admin("listWorkloads", "admin-workloads", "Every registered workload")
            .response("200", ok_json::<s::WorkloadList>("The workloads.")),
    );
    add(
        &a("/workloads"),
        Post,
        admin_with_body(
            "registerWorkload",
            "admin-workloads",
            "Registers a workload (or re-registers) and issues a join token",
        )
        .request_body(json_body::<s::RegisterWorkload>(true))
        .response(
            "200",
            ok_json::<s::WorkloadRegistered>("Already registered: a fresh join token."),
        )
        .response(
            "201",
            ok_json::<s::WorkloadRegistered>("Registered, with a join token."),
        ),
    );
    add(
        &a("/workloads/{id}"),
        Delete,
        admin("deleteWorkload", "admin-workloads", "Deletes a workload")
            .parameter(id("The SPIFFE ID, percent-encoded."))
            .response("204", empty("Deleted."))
            .response("400", r(BAD_REQUEST))
            .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/ca"),
        Get,
        admin("listCas", "admin-workloads", "The internal CAs").response("200", ok_json::<s::CaList>("The CAs.")),
    );
    add(
        &a("/ca/rotate"),
        Post,
        admin_with_body("rotateCa", "admin-workloads", "Promotes the next CA")
            .request_body(json_body::<s::RotateCa>(false))
            .response("200", ok_json::<s::CaList>("The CAs after the rotation."))
            .response("409", r(CONFLICT)),
    );

    // ---- admin: policies and decisions ----
    add(
        &a("/policies"),
        Get,
        admin("listPolicyServices", "admin-policies", "Services with policies").response(
            "200",
            ok_json::<s::PolicyServiceList>("Each service and its newest version."),
        ),
    );
    add(
        &a("/policies/{service}"),
        Get,
        admin("listPolicyVersions", "admin-policies", "A service's policy versions")
            .parameter(service())
            .response("200", ok_json::<s::PolicyVersionList>("The versions, without texts."))
            .response("400", r(BAD_REQUEST)),
    );
    add(
        &a("/policies/{service}"),
        Post,
        admin_with_body(
            "pushPolicies",
            "admin-policies",
            "Stores a new policy version (checked first)",
        )
        .parameter(service())
        .request_body(json_body::<s::PushPolicies>(true))
        .response("201", ok_json::<s::PolicyVersion>("The version, with `summary`.")),
    );
    add(
        &a("/policies/{service}/rollback"),
        Post,
        admin_with_body(
            "rollbackPolicies",
            "admin-policies",
            "Puts an old version back in force as a new version",
        )
        .parameter(service())
        .request_body(json_body::<s::RollbackPolicies>(true))
        .response("201", ok_json::<s::PolicyVersion>("The new version."))
        .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/policies/{service}/{version}"),
        Get,
        admin(
            "getPolicyVersion",
            "admin-policies",
            "One policy version with its texts",
        )
        .parameter(service())
        .parameter(path_param("version", "A version number or `latest`."))
        .response(
            "200",
            ok_json::<s::PolicyVersion>("The version, with `policies` and `schema`."),
        )
        .response("400", r(BAD_REQUEST))
        .response("404", r(NOT_FOUND)),
    );
    add(
        &a("/decisions/{service}"),
        Get,
        admin(
            "queryDecisions",
            "admin-policies",
            "A service's logged decisions, newest first",
        )
        .parameter(service())
        .parameters(Some([
            query(
                "principal",
                Type::String,
                "Only this principal uid; a bare id means `Principal::\"<id>\"`.",
            ),
            query("decision", Type::String, "`allow` or `deny`."),
            query("since", Type::Integer, "Only decisions at or after this time."),
            query("before_id", Type::Integer, "The previous page's `next_before_id`."),
            query("limit", Type::Integer, "1 to 10000 (default 100)."),
        ]))
        .response("200", ok_json::<s::DecisionPage>("A page of decisions."))
        .response("400", r(BAD_REQUEST)),
    );

    // ---- admin: canaries, probe runs, report ----
    add(
        &a("/canaries"),
        Post,
        admin_with_body("mintCanary", "admin-probe", "Mints a canary token for a probe check")
            .request_body(json_body::<s::MintCanary>(true))
            .response("201", ok_json::<s::Canary>("The canary."))
            .response("409", r(CONFLICT)),
    );
    add(
        &a("/probe-runs"),
        Get,
        admin("listProbeRuns", "admin-probe", "Recorded probe runs, newest first")
            .parameter(query("limit", Type::Integer, "1 to 100 (default 10)."))
            .response("200", ok_json::<s::ProbeRunList>("The runs."))
            .response("400", r(BAD_REQUEST)),
    );
    add(
        &a("/probe-runs"),
        Post,
        admin_with_body(
            "recordProbeRun",
            "admin-probe",
            "Records a probe run (`castellan probe --json`)",
        )
        .request_body(json_body::<s::ProbeRun>(true))
        .response("201", ok_json::<s::ProbeRunRecorded>("Recorded.")),
    );
    add(
        &a("/report"),
        Get,
        admin("getPlatformReport", "admin-probe", "The platform report")
            .response("200", ok_json::<s::PlatformReport>("The report.")),
    );

    // ---- admin: audit ----
    add(
        &a("/audit"),
        Get,
        admin("listAuditEvents", "admin-audit", "The audit trail")
            .parameter(query(
                "since",
                Type::Integer,
                "Only events at or after this time (seconds since the epoch).",
            ))
            .parameter(query(
                "actor",
                Type::String,
                "Only events by this actor (`client:<id>`, `user:<id>`, `castellan`).",
            ))
            .parameter(query(
                "after",
                Type::Integer,
                "Only events with a higher sequence number (the previous page's `next_after`).",
            ))
            .parameter(query("limit", Type::Integer, "Page size, 1 to 1000 (default 100)."))
            .response("200", ok_json::<s::AuditEventList>("The events."))
            .response("400", r(BAD_REQUEST)),
    );
    add(
        &a("/audit/verify"),
        Get,
        admin("verifyAuditTrail", "admin-audit", "Checks the audit trail's hash chain")
            .response("200", ok_json::<s::AuditVerification>("The result.")),
    );
    p
}
