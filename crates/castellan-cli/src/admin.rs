//! Admin commands: discover the authority, get an admin token with the
//! configured credentials, call the admin API, print the answer.

use crate::cli::{ClientCommand, Conn, KeysCommand};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::path::Path;

type Credentials = castellan_authz::ClientCredentials;

fn credentials(conn: &Conn) -> anyhow::Result<Credentials> {
    if let Some(path) = &conn.credentials {
        return Ok(Credentials::load(path)?);
    }
    match (
        std::env::var("CASTELLAN_CLIENT_ID"),
        std::env::var("CASTELLAN_CLIENT_SECRET"),
    ) {
        (Ok(client_id), Ok(client_secret)) => Ok(Credentials {
            client_id,
            client_secret,
        }),
        _ => bail!("no credentials: pass --credentials FILE or set CASTELLAN_CLIENT_ID and CASTELLAN_CLIENT_SECRET"),
    }
}

pub struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
    pub json: bool,
    /// The authority's discovery document.
    pub meta: Value,
}

async fn error_of(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body.get("error").and_then(Value::as_str).unwrap_or("error");
    let desc = body.get("error_description").and_then(Value::as_str).unwrap_or("");
    anyhow!("{status}: {code}: {desc}")
}

impl Admin {
    pub async fn connect(conn: &Conn) -> anyhow::Result<Self> {
        let creds = credentials(conn)?;
        // Long enough for a routine rotation's acknowledgement wait (keys.ack_timeout is at most 10m).
        let mut http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(660));
        if let Some(path) = &conn.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("cannot read CA file `{}`", path.display()))?;
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(&pem).with_context(|| format!("CA file `{}`", path.display()))?,
            );
        }
        let http = http.build()?;
        let server = conn.server.trim_end_matches('/');
        let meta = discover(&http, server).await?;
        let field = |name: &str| {
            meta.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("discovery document lacks `{name}`"))
        };
        let issuer = field("issuer")?;
        let token_endpoint = field("token_endpoint")?;
        let base = field("castellan_admin_endpoint")?;
        let resp = http
            .post(&token_endpoint)
            .basic_auth(url_encode(&creds.client_id), Some(url_encode(&creds.client_secret)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&scope=castellan.admin&audience={}",
                url_encode(&issuer)
            ))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await.context("admin sign-in failed"));
        }
        let body: Value = resp.json().await?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("token response lacks access_token"))?
            .to_owned();
        Ok(Self {
            http,
            base,
            token,
            json: conn.json,
            meta,
        })
    }

    /// The HTTP client (with the configured CA).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(resp.json().await?)
    }
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn print(json: bool, value: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

/// The authority's discovery document (RFC 8414) at `server`.
pub async fn discover(http: &reqwest::Client, server: &str) -> anyhow::Result<Value> {
    http.get(format!("{server}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .with_context(|| format!("cannot reach the authority at {server}"))?
        .error_for_status()?
        .json()
        .await
        .context("discovery document is not JSON")
}

pub fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub fn time(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_i64)
        .map_or_else(|| "-".to_owned(), |t| t.to_string())
}

fn print_keys(v: &Value) {
    out!(
        "{:<44} {:<6} {:<10} {:>11} {:>11} {:>11}",
        "KID",
        "ALG",
        "STATE",
        "CREATED",
        "ACTIVATED",
        "REMOVE_AT"
    );
    for k in v.get("keys").and_then(Value::as_array).into_iter().flatten() {
        out!(
            "{:<44} {:<6} {:<10} {:>11} {:>11} {:>11}",
            s(k, "kid"),
            s(k, "alg"),
            s(k, "state"),
            time(k, "created_at"),
            time(k, "activated_at"),
            time(k, "remove_at")
        );
    }
}

fn print_client(c: &Value) {
    out!("client_id:   {}", s(c, "client_id"));
    if let Some(secret) = c.get("client_secret").and_then(Value::as_str) {
        out!("secret:      {secret}   (shown once; store it now)");
    }
    out!("name:        {}", s(c, "name"));
    let list = |k: &str| {
        c.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    out!("audiences:   {}", list("audiences"));
    out!("scopes:      {}", list("scopes"));
    out!("auth method: {}", s(c, "auth_method"));
    if c.get("public").and_then(Value::as_bool).unwrap_or(false) {
        out!("public:      yes: no secret; the authorization-code flow requires PKCE (S256)");
    }
    let redirects = list("redirect_uris");
    if !redirects.is_empty() {
        out!("redirects:   {redirects}");
    }
    let logout = list("post_logout_redirect_uris");
    if !logout.is_empty() {
        out!("logout to:   {logout}");
    }
    if let Some(id) = c.get("tls_client_auth_san_uri").and_then(Value::as_str) {
        out!("svid:        {id}   (tls_client_auth on the mtls listener; tokens bound to the certificate)");
    }
    if let Some(serves) = c.get("serves").and_then(Value::as_str) {
        out!("serves:      {serves}");
    }
    let exchange = list("exchange_audiences");
    if !exchange.is_empty() {
        out!("exchanges to: {exchange}");
    }
    out!(
        "token ttl:   {}",
        c.get("access_token_ttl").and_then(Value::as_str).unwrap_or("default")
    );
}

fn print_cas(v: &Value) {
    out!(
        "trust domain {}   bundle sequence {}",
        s(v, "trust_domain"),
        v.get("bundle_sequence").and_then(Value::as_u64).unwrap_or(0)
    );
    out!("{:<44} {:<8} {:>11} {:>11}", "CA_ID", "STATE", "CREATED", "NOT_AFTER");
    for c in v.get("cas").and_then(Value::as_array).into_iter().flatten() {
        out!(
            "{:<44} {:<8} {:>11} {:>11}",
            s(c, "ca_id"),
            s(c, "state"),
            time(c, "created_at"),
            time(c, "not_after")
        );
    }
}

/// `castellan ca ...`.
pub async fn ca(cmd: crate::cli::CaCommand) -> anyhow::Result<()> {
    use crate::cli::CaCommand;
    match cmd {
        CaCommand::List { conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(reqwest::Method::GET, "/ca", None).await?;
            print(admin.json, &v, print_cas)
        }
        CaCommand::Rotate { force, emergency, conn } => {
            let admin = Admin::connect(&conn).await?;
            if !admin.json {
                let how = match (emergency, force) {
                    (true, _) => " (emergency: withdrawing the active CA from the bundle)",
                    (false, true) => " (forced)",
                    (false, false) => "",
                };
                eprintln!("rotating the internal CA{how}...");
            }
            let v = admin
                .call(
                    reqwest::Method::POST,
                    "/ca/rotate",
                    Some(json!({ "force": force, "emergency": emergency })),
                )
                .await?;
            print(admin.json, &v, print_cas)
        }
    }
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(reqwest::Method::GET, "/keys", None).await?;
            print(admin.json, &v, print_keys)
        }
        KeysCommand::Rotate { emergency, conn } => {
            let admin = Admin::connect(&conn).await?;
            if !admin.json {
                eprintln!(
                    "rotating signing keys{}...",
                    if emergency {
                        " (emergency: withdrawing the active key)"
                    } else {
                        ""
                    }
                );
            }
            let v = admin
                .call(
                    reqwest::Method::POST,
                    "/keys/rotate",
                    Some(json!({ "emergency": emergency })),
                )
                .await?;
            print(admin.json, &v, |v| {
                print_keys(v);
                let laggards: Vec<&str> = v
                    .get("laggards")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !laggards.is_empty() {
                    eprintln!(
                        "warning: promoted before these live verifiers held the new key: {}",
                        laggards.join(", ")
                    );
                }
            })
        }
    }
}

fn read_jwks(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))
}

pub async fn client(cmd: ClientCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    match cmd {
        ClientCommand::Create {
            name,
            audiences,
            scopes,
            access_token_ttl,
            jwks,
            public,
            redirect_uris,
            post_logout_redirect_uris,
            serves,
            exchange_audiences,
            tls_client_auth,
            conn,
        } => {
            if let Some(ttl) = &access_token_ttl {
                castellan_core::parse_duration(ttl).with_context(|| "--access-token-ttl".to_owned())?;
            }
            let mut body = json!({
                "name": name,
                "audiences": audiences,
                "scopes": scopes,
                "public": public,
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": post_logout_redirect_uris,
                "exchange_audiences": exchange_audiences,
            });
            if let (Some(aud), Some(obj)) = (serves, body.as_object_mut()) {
                obj.insert("serves".to_owned(), json!(aud));
            }
            if let (Some(id), Some(obj)) = (tls_client_auth, body.as_object_mut()) {
                let id = castellan_ca::SpiffeId::parse(&id).context("--tls-client-auth")?;
                obj.insert("tls_client_auth_san_uri".to_owned(), json!(id.as_str()));
            }
            if let (Some(ttl), Some(obj)) = (access_token_ttl, body.as_object_mut()) {
                obj.insert("access_token_ttl".to_owned(), json!(ttl));
            }
            if let (Some(path), Some(obj)) = (jwks, body.as_object_mut()) {
                obj.insert("jwks".to_owned(), read_jwks(&path)?);
            }
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::POST, "/clients", Some(body)).await?;
            print(admin.json, &v, print_client)
        }
        ClientCommand::List { conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::GET, "/clients", None).await?;
            print(admin.json, &v, |v| {
                out!("{:<24} {:<16} {:<32} AUDIENCES", "CLIENT_ID", "AUTH", "NAME");
                for c in v.get("clients").and_then(Value::as_array).into_iter().flatten() {
                    let auds = c
                        .get("audiences")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                        .unwrap_or_default();
                    out!(
                        "{:<24} {:<16} {:<32} {}",
                        s(c, "client_id"),
                        s(c, "auth_method"),
                        s(c, "name"),
                        auds
                    );
                }
            })
        }
        ClientCommand::Show { client_id, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(Method::GET, &format!("/clients/{}", url_encode(&client_id)), None)
                .await?;
            print(admin.json, &v, print_client)
        }
        ClientCommand::Delete { client_id, conn } => {
            let admin = Admin::connect(&conn).await?;
            admin
                .call(Method::DELETE, &format!("/clients/{}", url_encode(&client_id)), None)
                .await?;
            print(admin.json, &json!({ "deleted": client_id }), |_| {
                out!("deleted {client_id}")
            })
        }
        ClientCommand::Revoke { client_id, conn } => revoke("clients", &client_id, &conn).await,
        ClientCommand::RotateSecret { client_id, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(
                    Method::POST,
                    &format!("/clients/{}/rotate-secret", url_encode(&client_id)),
                    None,
                )
                .await?;
            print(admin.json, &v, print_client)
        }
    }
}

/// `castellan {sessions,subjects,client} revoke ID`.
pub async fn revoke(kind: &str, id: &str, conn: &Conn) -> anyhow::Result<()> {
    let admin = Admin::connect(conn).await?;
    let v = admin
        .call(
            reqwest::Method::POST,
            &format!("/{kind}/{}/revoke", url_encode(id)),
            None,
        )
        .await?;
    print(admin.json, &v, |v| {
        let e = &v["event"];
        out!(
            "revoked {} `{}` (event {}); verifiers refuse its tokens as soon as the event reaches them",
            s(e, "kind"),
            s(e, "value"),
            e.get("seq").and_then(Value::as_i64).unwrap_or(0)
        );
    })
}

/// `castellan verifiers list`.
pub async fn verifiers(conn: &Conn) -> anyhow::Result<()> {
    let admin = Admin::connect(conn).await?;
    let v = admin.call(reqwest::Method::GET, "/verifiers", None).await?;
    print(admin.json, &v, |v| {
        out!(
            "{:<28} {:<8} {:<20} {:>5} {:>4} KIDS",
            "VERIFIER",
            "KIND",
            "AUDIENCE",
            "LAG",
            "LIVE"
        );
        for x in v.get("verifiers").and_then(Value::as_array).into_iter().flatten() {
            let kids = x
                .get("kids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|k| k.chars().take(8).collect::<String>())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            out!(
                "{:<28} {:<8} {:<20} {:>5} {:>4} {}",
                s(x, "verifier_id"),
                s(x, "kind"),
                s(x, "audience"),
                x.get("stream_lag").and_then(Value::as_i64).unwrap_or(0),
                if x.get("live").and_then(Value::as_bool).unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                kids
            );
        }
    })
}
