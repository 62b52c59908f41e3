//! Signing a person in the way a browser does: fetch the authorization
//! endpoint, read the login form out of the HTML, post it with the cookie
//! the page set, and follow nothing automatically so each hop is visible.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A PKCE verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// Sent to the token endpoint.
    pub verifier: String,
    /// Sent to the authorization endpoint.
    pub challenge: String,
}

/// A fresh random PKCE pair.
pub fn pkce() -> Pkce {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Pkce {
        challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        verifier,
    }
}

/// A cookie-keeping, non-redirecting client.
pub struct Browser {
    /// The HTTP client (redirects off).
    pub http: reqwest::Client,
    /// `name=value` cookies set so far.
    pub cookies: Vec<(String, String)>,
}

/// The login form found on a page.
#[derive(Debug, Clone)]
pub struct LoginForm {
    /// Where it posts.
    pub action: String,
    /// The hidden `request` field.
    pub request: String,
}

/// A raw answer.
#[derive(Debug)]
pub struct Page {
    /// Status code.
    pub status: u16,
    /// `Location`, if any.
    pub location: Option<String>,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The query parameters of the `Location` header.
    pub fn redirect_params(&self) -> Vec<(String, String)> {
        let loc = self.location.as_deref().expect("a redirect");
        url::Url::parse(loc)
            .expect("absolute Location")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// One parameter of the redirect.
    pub fn redirect_param(&self, name: &str) -> Option<String> {
        self.redirect_params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The login form on this page.
    pub fn login_form(&self) -> LoginForm {
        parse_login_form(&self.body).unwrap_or_else(|| panic!("no login form in:\n{}", self.body))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#x3d;", "=")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    let end = tag[v..].find('"')? + v;
    Some(unescape(&tag[v..end]))
}

/// Finds the login form (`<form method="post" action=...>` with fields
/// `request`, `username` and `password`).
pub fn parse_login_form(html: &str) -> Option<LoginForm> {
    if !html.contains("name=\"username\"") || !html.contains("name=\"password\"") {
        return None;
    }
    let form_at = html.find("<form method=\"post\"")?;
    let form_html = &html[form_at..];
    let action = attr_after(form_html, "method=\"post\"", "action")?;
    let request = attr_after(form_html, "name=\"request\"", "value")?;
    Some(LoginForm { action, request })
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Self {
        crate::install_tls_provider();
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            self.cookies.push((k.to_owned(), val.to_owned()));
        }
        Page {
            status: resp.status().as_u16(),
            location: resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned()),
            body: resp.text().await.unwrap(),
        }
    }

    /// `GET url`.
    pub async fn get(&mut self, url: &str) -> Page {
        let mut req = self.http.get(url);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.unwrap();
        self.finish(resp).await
    }

    /// `POST` a form to `url`.
    pub async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let mut req = self.http.post(url).form(fields);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.unwrap();
        self.finish(resp).await
    }

    /// Submits a login form.
    pub async fn submit_login(&mut self, form: &LoginForm, username: &str, password: &str) -> Page {
        let action = form.action.clone();
        self.post_form(
            &action,
            &[
                ("request", &form.request),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}

/// The authorization request an app sends.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// Issuer base URL.
    pub issuer: &'a str,
    /// App.
    pub client_id: &'a str,
    /// Registered redirect URI.
    pub redirect_uri: &'a str,
    /// Scopes.
    pub scope: &'a str,
    /// PKCE challenge.
    pub challenge: &'a str,
    /// State.
    pub state: &'a str,
    /// Nonce.
    pub nonce: &'a str,
}

impl AuthRequest<'_> {
    /// The full authorization URL.
    pub fn url(&self) -> String {
        let mut u = url::Url::parse(&format!("{}/oauth2/authorize", self.issuer)).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", self.client_id)
            .append_pair("redirect_uri", self.redirect_uri)
            .append_pair("scope", self.scope)
            .append_pair("state", self.state)
            .append_pair("nonce", self.nonce)
            .append_pair("code_challenge", self.challenge)
            .append_pair("code_challenge_method", "S256");
        u.to_string()
    }
}

/// Signs `username` in through the login page and returns the redirect
/// back to the app (status 303 with `code` and `state` on success).
pub async fn sign_in(req: &AuthRequest<'_>, username: &str, password: &str) -> Page {
    let mut browser = Browser::new();
    let page = browser.get(&req.url()).await;
    assert_eq!(page.status, 200, "login page: {}", page.body);
    let form = page.login_form();
    browser.submit_login(&form, username, password).await
}
