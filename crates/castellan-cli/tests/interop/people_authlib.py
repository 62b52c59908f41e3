#!/usr/bin/env python3
"""An independent OpenID Connect relying party (Python authlib) signs a
person in at a running Castellan authority and refreshes the session.

Driven by crates/castellan-cli/tests/interop_people.rs, which boots the real
`castellan` binary and registers a public client and a person. Runnable by hand:

    python3 people_authlib.py --issuer http://127.0.0.1:PORT --client-id ID \
        --redirect-uri http://127.0.0.1:PORT2/cb --username alice --password ...

Steps: discovery (validated by authlib's metadata models) -> authorization URL
with PKCE S256 built by authlib's OAuth2Session -> the login page fetched and
submitted the way a browser would (with `requests`, redirects not followed) ->
code exchange by authlib -> id_token validated by authlib's own relying-party
code (OpenIDMixin.parse_id_token: CodeIDToken claims, signature against the
JWKS from discovery) -> userinfo -> refresh with rotation -> replay of the old
refresh token refused with invalid_grant.

Prints one JSON summary on stdout and exits 0; on any failure prints
`FAIL: <step>: <reason>` on stderr and exits 1. No token or password is printed.
"""

import argparse
import base64
import hashlib
import json
import sys
import time
import traceback
import warnings
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

try:
    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
except ImportError:  # older authlib: nothing deprecated to silence
    pass

import authlib
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc8414 import get_well_known_url as oauth_well_known_url
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from authlib.oidc.discovery import get_well_known_url as oidc_well_known_url

TIMEOUT = 30
LEEWAY = 120


class Failure(Exception):
    """A check failed; the message says which and why."""


STEP = ["start"]


def step(name):
    STEP[0] = name


def check(cond, message):
    if not cond:
        raise Failure(message)


def b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def jose_header(token):
    return b64url_json(token.split(".")[0])


def origin(url):
    p = urlsplit(url)
    return "%s://%s" % (p.scheme, p.netloc)


def get_json(url, **kwargs):
    r = requests.get(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
    check(r.status_code == 200, "GET %s answered %d: %.300s" % (url, r.status_code, r.text))
    ctype = r.headers.get("content-type", "")
    check(ctype.startswith("application/json"), "GET %s content-type is %r" % (url, ctype))
    return r.json()


class FormParser(HTMLParser):
    """Collects every <form> with its inputs (attribute values come back unescaped)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = {
                "method": (a.get("method") or "get").lower(),
                "action": a.get("action"),
                "inputs": [],
            }
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None:
            self._current["inputs"].append(
                {"name": a.get("name"), "type": (a.get("type") or "text").lower(), "value": a.get("value") or ""}
            )

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


class TextParser(HTMLParser):
    """The visible text of a page (for failure messages)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "head"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def page_text(html):
    parser = TextParser()
    parser.feed(html)
    parser.close()
    return " | ".join(parser.parts)[:400]


def login_form(html):
    parser = FormParser()
    parser.feed(html)
    parser.close()
    for form in parser.forms:
        names = {i["name"] for i in form["inputs"]}
        if form["method"] == "post" and {"username", "password"} <= names:
            return form
    raise Failure("no POST form with username and password fields on the login page: %s" % page_text(html))


def set_cookie_attributes(response, name):
    """The attributes of the Set-Cookie header that sets `name`, lower-cased."""
    for raw in response.raw.headers.getlist("Set-Cookie"):
        parts = [p.strip() for p in raw.split(";")]
        if parts and parts[0].split("=", 1)[0] == name:
            return [p.lower() for p in parts[1:]]
    return None


class RelyingParty(OpenIDMixin):
    """The smallest host for authlib's own relying-party id_token checks
    (`OpenIDMixin.parse_id_token`, what authlib's Flask/Django/Starlette
    clients run): metadata and JWKS come from discovery, already fetched."""

    def __init__(self, client_id, metadata, jwks):
        self.client_id = client_id
        self.server_metadata = dict(metadata, jwks=jwks)

    def load_server_metadata(self):
        return self.server_metadata

    def _get_session(self):
        # Only reached when a `kid` is unknown: authlib refetches the JWKS.
        return OAuth2Session(self.client_id)


def expect_rejection(what, fn, needle):
    """`fn` must raise, and the error must mention `needle`; returns the error's type name."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any validation error type of any authlib version
        text = "%s: %s" % (type(e).__name__, e)
        check(needle.lower() in text.lower(), "%s was rejected for the wrong reason: %s" % (what, text))
        return type(e).__name__
    raise Failure("%s was accepted by authlib" % what)


def tamper_signature(token):
    head, sig = token.rsplit(".", 1)
    # Change characters before the last one (whose low bits may be padding).
    middle = "".join("B" if c == "A" else "A" for c in sig[-6:-1])
    return "%s.%s%s%s" % (head, sig[:-6], middle, sig[-1])


def run(args):
    summary = {"authlib_version": authlib.__version__, "requests_version": requests.__version__}
    issuer = args.issuer

    # --- Discovery, checked by authlib's RFC 8414 / OIDC Discovery models.
    step("discovery")
    oidc_url = oidc_well_known_url(issuer, external=True)
    oauth_url = oauth_well_known_url(issuer, external=True)
    meta = get_json(oidc_url)
    deviations = []
    checked = dict(meta)
    id_algs = list(meta.get("id_token_signing_alg_values_supported") or [])
    if "RS256" not in id_algs:
        # The one departure tolerated, reported rather than failed: authlib's
        # validate() stops at it, so the remaining checks run on a copy with RS256.
        deviations.append(
            "OIDC Discovery 1.0 section 3: id_token_signing_alg_values_supported %r "
            "does not include RS256, which MUST be included; authlib's "
            "OpenIDProviderMetadata.validate() rejects the document for it" % (id_algs,)
        )
        checked["id_token_signing_alg_values_supported"] = id_algs + ["RS256"]
    OpenIDProviderMetadata(checked).validate()
    oauth_meta = get_json(oauth_url)
    AuthorizationServerMetadata(oauth_meta).validate()
    check(meta["issuer"] == issuer, "discovery issuer %r is not %r (OIDC Discovery 4.3)" % (meta["issuer"], issuer))
    check(oauth_meta["issuer"] == issuer, "RFC 8414 issuer %r is not %r (RFC 8414 3.3)" % (oauth_meta["issuer"], issuer))
    for key, want in [
        ("code_challenge_methods_supported", "S256"),
        ("response_types_supported", "code"),
        ("grant_types_supported", "authorization_code"),
        ("grant_types_supported", "refresh_token"),
        ("token_endpoint_auth_methods_supported", "none"),
        ("scopes_supported", "openid"),
    ]:
        check(want in meta.get(key, []), "discovery %s lacks %r: %r" % (key, want, meta.get(key)))
    for key in ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"]:
        check(isinstance(meta.get(key), str), "discovery lacks %s" % key)
    summary["discovery"] = {
        "deviations": deviations,
        "validated_by": "authlib OpenIDProviderMetadata + AuthorizationServerMetadata",
        "id_token_signing_alg_values_supported": id_algs,
    }

    step("jwks")
    jwks = get_json(meta["jwks_uri"])
    check(isinstance(jwks.get("keys"), list) and jwks["keys"], "JWKS has no keys: %r" % jwks)
    summary["jwks_kids"] = [k.get("kid") for k in jwks["keys"]]

    # --- The authorization request, built by authlib.
    step("authorization url")
    scope = "openid profile orders.read"
    calls = []
    rp_session = OAuth2Session(
        client_id=args.client_id,
        redirect_uri=args.redirect_uri,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        token_endpoint=meta["token_endpoint"],
    )
    rp_session.hooks["response"].append(lambda r, *a, **k: calls.append(r))
    code_verifier = generate_token(64)
    nonce = generate_token(24)
    auth_url, state = rp_session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )
    q = parse_qs(urlsplit(auth_url).query)
    expected_challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=").decode()
    check(q.get("code_challenge") == [expected_challenge], "authlib built an unexpected code_challenge")
    check(q.get("code_challenge_method") == ["S256"], "authlib did not ask for S256")

    # --- The browser: login page, form, cookie, 303 back to the app.
    step("login page")
    page = requests.get(auth_url, timeout=TIMEOUT, allow_redirects=False)
    check(page.status_code == 200, "authorization endpoint answered %d: %s" % (page.status_code, page_text(page.text)))
    check(page.headers.get("content-type", "").startswith("text/html"), "login page is not HTML")
    login_cookie = page.cookies.get("castellan_login")
    check(login_cookie, "the login page set no castellan_login cookie")
    attrs = set_cookie_attributes(page, "castellan_login") or []
    check("httponly" in attrs, "castellan_login is not HttpOnly: %r" % attrs)
    check("samesite=lax" in attrs or "samesite=strict" in attrs, "castellan_login has no SameSite: %r" % attrs)
    form = login_form(page.text)
    action = urljoin(page.url, form["action"] or page.url)
    check(origin(action) == origin(issuer), "the login form posts to another origin: %s" % action)
    fields = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden" and i["name"]}
    check(fields.get("request"), "the login form has no hidden request field")
    fields["username"] = args.username
    fields["password"] = args.password

    step("login post")
    back = requests.post(
        action,
        data=fields,
        cookies={"castellan_login": login_cookie},
        headers={"Origin": origin(issuer)},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    check(back.status_code == 303, "login answered %d, not 303: %s" % (back.status_code, page_text(back.text)))
    location = back.headers.get("location", "")
    check(location.startswith(args.redirect_uri + "?"), "login redirected to %r, not the redirect URI" % location)
    rq = parse_qs(urlsplit(location).query)
    check("error" not in rq, "login redirected with an error: %r" % rq)
    check(rq.get("state") == [state], "state did not round-trip")
    # RFC 9207: authlib does not check `iss`, so the test does.
    check(rq.get("iss") == [issuer], "iss in the authorization response is %r, not %r" % (rq.get("iss"), issuer))
    check(len(rq.get("code", [])) == 1, "no single code in the redirect")

    # --- Code exchange by authlib (checks state itself, sends code_verifier).
    step("code exchange")
    token = dict(rp_session.fetch_token(authorization_response=location, code_verifier=code_verifier))
    resp = calls[-1]
    check(resp.status_code == 200, "token endpoint answered %d" % resp.status_code)
    check("no-store" in resp.headers.get("cache-control", ""), "token response lacks Cache-Control: no-store (RFC 6749 5.1)")
    check(str(token.get("token_type", "")).lower() == "bearer", "token_type is %r" % token.get("token_type"))
    for key in ["access_token", "refresh_token", "id_token"]:
        check(isinstance(token.get(key), str) and token[key], "token response lacks %s" % key)
    check(isinstance(token.get("expires_in"), int) and token["expires_in"] > 0, "bad expires_in %r" % token.get("expires_in"))
    check("openid" in token.get("scope", "").split(), "scope %r lacks openid" % token.get("scope"))

    # --- id_token validation by authlib's relying-party code.
    step("id_token")
    rp = RelyingParty(args.client_id, meta, jwks)
    options = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": args.client_id},
    }

    def parse(tok, nonce_value, opts=None):
        return rp.parse_id_token(tok, nonce=nonce_value, claims_options=json.loads(json.dumps(opts or options)))

    claims = dict(parse(token, nonce))
    header = jose_header(token["id_token"])
    check(header.get("alg") in id_algs, "id_token alg %r not advertised %r" % (header.get("alg"), id_algs))
    check(any(k.get("kid") == header.get("kid") for k in jwks["keys"]), "id_token kid not in the JWKS")
    check(claims.get("nonce") == nonce, "nonce not echoed")
    check(claims.get("aud") in (args.client_id, [args.client_id]), "aud is %r" % claims.get("aud"))
    now = int(time.time())
    check(claims["exp"] > now, "id_token already expired")
    check(abs(claims["iat"] - now) <= LEEWAY, "iat %r is far from now %r" % (claims["iat"], now))
    summary["id_token"] = {"header": {k: header.get(k) for k in ("alg", "kid", "typ")}, "claims": claims}

    step("id_token negative controls")
    negatives = {}
    negatives["wrong_nonce"] = expect_rejection("an id_token checked against another nonce", lambda: parse(token, nonce + "x"), "nonce")
    other_aud = dict(options, aud={"essential": True, "value": args.client_id + "-other"})
    negatives["wrong_audience"] = expect_rejection(
        "an id_token checked for another client", lambda: parse(token, nonce, other_aud), "aud"
    )
    other_iss = dict(options, iss={"essential": True, "value": issuer + "/other"})
    negatives["wrong_issuer"] = expect_rejection(
        "an id_token checked for another issuer", lambda: parse(token, nonce, other_iss), "iss"
    )
    forged = dict(token, id_token=tamper_signature(token["id_token"]))
    check(forged["id_token"] != token["id_token"], "tampering changed nothing")
    negatives["altered_signature"] = expect_rejection(
        "an id_token with an altered signature", lambda: parse(forged, nonce), "signature"
    )
    later = claims["exp"] + LEEWAY + 1
    negatives["expired"] = expect_rejection(
        "an id_token checked after exp",
        lambda: CodeIDToken(claims, header, json.loads(json.dumps(options)), {"nonce": nonce, "client_id": args.client_id}).validate(
            now=later, leeway=LEEWAY
        ),
        "exp",
    )
    summary["id_token_negative_controls"] = negatives

    # --- userinfo with the access token (authlib adds the bearer header).
    step("userinfo")
    r = rp_session.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
    check(r.status_code == 200, "userinfo answered %d: %.300s" % (r.status_code, r.text))
    userinfo = r.json()
    check(userinfo.get("sub") == claims["sub"], "userinfo sub %r differs from id_token sub (OIDC Core 5.3.2)" % userinfo.get("sub"))
    check(userinfo.get("preferred_username") == args.username, "userinfo preferred_username is %r" % userinfo.get("preferred_username"))
    summary["userinfo"] = userinfo

    # --- Refresh: rotation.
    step("refresh")
    old_refresh = token["refresh_token"]
    refreshed = dict(rp_session.refresh_token(meta["token_endpoint"], refresh_token=old_refresh))
    check(calls[-1].status_code == 200, "refresh answered %d" % calls[-1].status_code)
    new_refresh = refreshed.get("refresh_token")
    check(isinstance(new_refresh, str) and new_refresh, "refresh response has no refresh_token")
    check(new_refresh != old_refresh, "refresh token was not rotated")
    check(refreshed.get("access_token") and refreshed["access_token"] != token["access_token"], "no new access token")
    summary_refresh = {"rotated": True}
    if "id_token" in refreshed:
        # OIDC Core 12.2: same iss, sub, aud (and auth_time) as the original.
        rclaims = dict(parse(refreshed, None))
        for claim in ["iss", "sub", "aud", "auth_time"]:
            check(rclaims.get(claim) == claims.get(claim), "refreshed id_token %s %r differs from %r" % (claim, rclaims.get(claim), claims.get(claim)))
        check(rclaims["iat"] >= claims["iat"], "refreshed id_token iat went backwards")
        summary_refresh["id_token_claims"] = rclaims
    r = rp_session.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
    check(r.status_code == 200 and r.json().get("sub") == claims["sub"], "userinfo with the refreshed access token: %d" % r.status_code)
    summary["refresh"] = summary_refresh

    # --- Replay of the old refresh token must fail with invalid_grant.
    step("refresh replay")

    def replay(rt):
        try:
            rp_session.refresh_token(meta["token_endpoint"], refresh_token=rt)
        except OAuthError as e:
            return {"status": calls[-1].status_code, "error": e.error}
        raise Failure("the token endpoint accepted a refresh token that must be dead (status %d)" % calls[-1].status_code)

    replayed = replay(old_refresh)
    check(replayed["error"] == "invalid_grant", "replayed refresh token: error %r, not invalid_grant" % replayed["error"])
    check(replayed["status"] == 400, "replayed refresh token: status %d, not 400 (RFC 6749 5.2)" % replayed["status"])
    summary["replay_old_refresh_token"] = replayed
    # Reuse detection (RFC 9700 4.14.2): the replay revokes the rotated token too.
    after = replay(new_refresh)
    check(after["error"] == "invalid_grant", "rotated refresh token after a replay: error %r" % after["error"])
    summary["rotated_refresh_token_after_replay"] = after

    summary["ok"] = True
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--redirect-uri", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    args = p.parse_args()
    try:
        summary = run(args)
    except Failure as e:
        print("FAIL: %s: %s" % (STEP[0], e), file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - report, then fail
        traceback.print_exc()
        print("FAIL: %s: unexpected %s: %s" % (STEP[0], type(e).__name__, e), file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
