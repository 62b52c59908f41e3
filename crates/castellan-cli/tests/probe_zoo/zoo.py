"""A zoo of small services that validate Castellan access tokens with an
ordinary JWT library (PyJWT) and one realistic flaw each, for the drift
probe's test. Each listens on its own loopback port; the script prints
`READY <name> <port>` per service, then `ALL READY`, and serves until
stdin closes.

The baseline (what every service does unless its flaw says otherwise):
`typ` must be `at+jwt`; the key comes from the authority's JWKS by `kid`,
with the algorithm that key declares; PyJWT checks the signature, `iss`,
`aud`, `exp`, `iat` (30 s leeway); the session, subject and client must not
be revoked (the authority's `/revocations` snapshot). Key withdrawal reaches
a service through the JWKS, as with most JWT stacks.
"""

import argparse
import hashlib
import hmac
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization

LEEWAY = 30


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


class Authority:
    def __init__(self, issuer, audience):
        self.issuer = issuer
        self.audience = audience
        meta = get_json(issuer + "/.well-known/openid-configuration")
        self.jwks_uri = meta["jwks_uri"]

    def keys(self):
        return {k["kid"]: k for k in get_json(self.jwks_uri)["keys"]}

    def revoked(self, claims):
        events = get_json(self.issuer + "/revocations?after=0&limit=1000")["events"]
        for e in events:
            kind, value, nb = e["kind"], e["value"], e["not_before"]
            if kind == "session" and value == claims.get("sid"):
                return True
            if kind == "subject" and value == claims.get("sub") and claims.get("iat", 0) <= nb:
                return True
            if kind == "client" and value == claims.get("client_id") and claims.get("iat", 0) <= nb:
                return True
        return False


class Refused(Exception):
    pass


def verify(auth, token, *, keys=None, verify_aud=True, verify_exp=True, check_revocation=True):
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise Refused("typ")
    keys = keys if keys is not None else auth.keys()
    jwk = keys.get(header.get("kid"))
    if jwk is None:
        raise Refused("unknown kid")
    key = jwt.PyJWK(jwk)
    claims = jwt.decode(
        token,
        key=key.key,
        algorithms=[jwk["alg"]],
        audience=auth.audience if verify_aud else None,
        issuer=auth.issuer,
        leeway=LEEWAY,
        options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": verify_aud, "verify_exp": verify_exp},
    )
    if check_revocation and auth.revoked(claims):
        raise Refused("revoked")
    return claims


def claims_without_signature(auth, token):
    return jwt.decode(
        token,
        options={"verify_signature": False, "require": ["exp", "iat", "iss", "sub"]},
        audience=auth.audience,
        issuer=auth.issuer,
        leeway=LEEWAY,
    )


def make_services(auth):
    pinned = dict(auth.keys())  # fetched once at start

    def skip_audience(token):
        return verify(auth, token, verify_aud=False)

    def skip_expiry(token):
        return verify(auth, token, verify_exp=False)

    def pinned_keys(token):
        # Refreshes the JWKS, but never forgets a key it once saw.
        keys = dict(pinned)
        keys.update(auth.keys())
        pinned.update(keys)
        return verify(auth, token, keys=keys)

    def accepts_none(token):
        if jwt.get_unverified_header(token).get("alg", "").lower() == "none":
            return claims_without_signature(auth, token)
        return verify(auth, token)

    def hmac_public_key(token):
        header = jwt.get_unverified_header(token)
        if header.get("alg") == "HS256":
            jwk = auth.keys().get(header.get("kid"))
            if jwk is None:
                raise Refused("unknown kid")
            pem = jwt.PyJWK(jwk).key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            signing_input, _, sig = token.rpartition(".")
            expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
            got = jwt.utils.base64url_decode(sig.encode())
            if not hmac.compare_digest(expected, got):
                raise Refused("bad hmac")
            return claims_without_signature(auth, token)
        return verify(auth, token)

    def no_revocation(token):
        return verify(auth, token, check_revocation=False)

    return {
        "skip-audience": skip_audience,
        "skip-expiry": skip_expiry,
        "pinned-keys": pinned_keys,
        "accepts-none": accepts_none,
        "hmac-public-key": hmac_public_key,
        "no-revocation": no_revocation,
    }


def handler_for(check):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            value = self.headers.get("Authorization", "")
            status = 401
            if value.startswith("Bearer "):
                try:
                    check(value[len("Bearer "):])
                    status = 200
                except Exception:  # any refusal, PyJWT's included
                    status = 401
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True)
    a = p.parse_args()
    auth = Authority(a.issuer.rstrip("/"), a.audience)
    for name, check in make_services(auth).items():
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(check))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"READY {name} {server.server_address[1]}", flush=True)
    print("ALL READY", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
