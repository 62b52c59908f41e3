//! A catalogue of forged access tokens run against `validate` directly (no
//! network), and property tests around it.
//!
//! Every catalogue case names the exact [`Rejection`] it must earn, and the
//! control cases must be accepted, so a verifier that refused everything
//! would fail here as surely as one that accepted a forgery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use castellan_core::UnixTime;
use castellan_jose::{b64, Algorithm, SigningKey, VerifyingKey, MAX_TOKEN_BYTES};
use castellan_verify::{
    validate, validate_presented, x5t_s256, EffectiveProfile, KeyRing, LocalPolicy, PresentedCertificate, Rejection,
    RevocationEvent, RevocationState, RevokedBy, ValidationContext, ValidationProfile, VerifiedToken,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::{Arc, LazyLock};

const NOW: UnixTime = 1_700_000_000;
const ISSUER: &str = "https://auth.test";
const AUDIENCE: &str = "orders";
const REQUIRED: [&str; 8] = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"];

/// Order of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Order of the Ed25519 group, little-endian.
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

struct Fixture {
    es: SigningKey,
    es_pkcs8: Vec<u8>,
    ed: SigningKey,
    ed_pkcs8: Vec<u8>,
    rs: SigningKey,
    rs_pkcs8: Vec<u8>,
    ps: SigningKey,
    /// The RS256 key's private half, used with PSS padding.
    rs_as_pss: SigningKey,
    /// Keys of the attacker, never in the ring.
    attacker_es: SigningKey,
    attacker_ed: SigningKey,
    attacker_rs: SigningKey,
    ring: KeyRing,
    profile: EffectiveProfile,
}

fn served(algs: &[&str]) -> ValidationProfile {
    ValidationProfile {
        allowed_algorithms: algs.iter().map(|a| (*a).to_owned()).collect(),
        token_type: "at+jwt".into(),
        required_claims: REQUIRED.iter().map(|c| (*c).to_owned()).collect(),
        max_leeway_seconds: 30,
        max_token_lifetime_seconds: 3600,
        staleness_window_seconds: 300,
        heartbeat_interval_seconds: None,
        max_delegation_depth: Some(4),
    }
}

fn profile(algs: &[&str], local: &LocalPolicy) -> EffectiveProfile {
    EffectiveProfile::new(&served(algs), local).unwrap()
}

static FX: LazyLock<Fixture> = LazyLock::new(|| {
    let (es, es_pkcs8) = SigningKey::generate(Algorithm::ES256).unwrap();
    let (ed, ed_pkcs8) = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let (rs, rs_pkcs8) = SigningKey::generate(Algorithm::RS256).unwrap();
    let (ps, _) = SigningKey::generate(Algorithm::PS256).unwrap();
    let rs_as_pss = SigningKey::from_pkcs8(Algorithm::PS256, &rs_pkcs8).unwrap();
    let ring: KeyRing = [&es, &ed, &rs, &ps]
        .into_iter()
        .map(|k| {
            let vk = VerifyingKey::from_jwk(k.public_jwk()).unwrap();
            (k.kid().to_owned(), Arc::new(vk))
        })
        .collect();
    Fixture {
        es,
        es_pkcs8,
        ed,
        ed_pkcs8,
        rs,
        rs_pkcs8,
        ps,
        rs_as_pss,
        attacker_es: SigningKey::generate(Algorithm::ES256).unwrap().0,
        attacker_ed: SigningKey::generate(Algorithm::EdDSA).unwrap().0,
        attacker_rs: SigningKey::generate(Algorithm::RS256).unwrap().0,
        ring,
        profile: profile(&["ES256", "EdDSA", "RS256", "PS256"], &LocalPolicy::default()),
    }
});

fn run_in(token: &str, profile: &EffectiveProfile, revocations: &RevocationState) -> Result<VerifiedToken, Rejection> {
    validate(
        token,
        &ValidationContext {
            keys: &FX.ring,
            profile,
            issuer: ISSUER,
            audience: AUDIENCE,
            revocations,
            now: NOW,
        },
    )
}

fn run(token: &str) -> Result<VerifiedToken, Rejection> {
    run_in(token, &FX.profile, &RevocationState::default())
}

// ---------------------------------------------------------------------------
// Token builders
// ---------------------------------------------------------------------------

/// The claims of a genuine access token.
fn claims() -> Map<String, Value> {
    json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": NOW + 300,
        "iat": NOW,
        "jti": "jti-0001",
        "client_id": "app",
        "sid": "sess-1",
        "scope": "read write",
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn claims_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Map<String, Value> {
    let mut c = claims();
    edit(&mut c);
    c
}

fn sign(key: &SigningKey, claims: &Map<String, Value>) -> String {
    key.sign_compact("at+jwt", claims).unwrap()
}

fn genuine() -> String {
    sign(&FX.es, &claims())
}

fn enc(text: &str) -> String {
    b64::encode(text.as_bytes())
}

/// The header JSON text `{"alg","kid","typ":"at+jwt"}`.
fn header(alg: &str, kid: &str) -> String {
    json!({"alg": alg, "kid": kid, "typ": "at+jwt"}).to_string()
}

/// Header JSON text with extra members.
fn header_plus(alg: &str, kid: &str, extra: Value) -> String {
    let mut h = json!({"alg": alg, "kid": kid, "typ": "at+jwt"});
    for (k, v) in extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    h.to_string()
}

fn payload() -> String {
    Value::Object(claims()).to_string()
}

/// Assembles a token from raw header and payload text and signature bytes.
fn assemble(header: &str, payload: &str, sig: &[u8]) -> String {
    format!("{}.{}.{}", enc(header), enc(payload), b64::encode(sig))
}

/// Signs already-encoded segments with `key`, whatever they hold.
fn sign_segments(key: &SigningKey, header_b64: &str, payload_b64: &str) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let sig = key.sign_raw(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

/// Signs raw header and payload text genuinely, so duplicates and oddities
/// survive and only the check under test can catch them.
fn sign_text(key: &SigningKey, header: &str, payload: &str) -> String {
    sign_segments(key, &enc(header), &enc(payload))
}

fn segments(token: &str) -> (&str, &str, &str) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    (h, p, sig)
}

fn signature_of(token: &str) -> Vec<u8> {
    b64::decode(segments(token).2).unwrap()
}

fn with_signature(token: &str, sig: &[u8]) -> String {
    let (h, p, _) = segments(token);
    format!("{h}.{p}.{}", b64::encode(sig))
}

fn to_standard_alphabet(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect()
}

/// Adds the `=` padding that unpadded base64 leaves out.
fn with_padding(mut s: String) -> String {
    let missing = (4 - s.len() % 4) % 4;
    s.push_str(&"=".repeat(missing));
    s
}

fn standard_b64(bytes: &[u8]) -> String {
    with_padding(to_standard_alphabet(&b64::encode(bytes)))
}

fn pem(label: &str, der: &[u8], eol: &str) -> String {
    let body = standard_b64(der);
    let mut out = format!("-----BEGIN {label}-----{eol}");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str(eol);
    }
    out.push_str(&format!("-----END {label}-----{eol}"));
    out
}

/// Sets a trailing (unused) bit in the last character of an unpadded
/// base64url segment whose length is not a multiple of four.
fn with_trailing_bit(segment: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_ne!(segment.len() % 4, 0, "no trailing bits in a whole quantum");
    let (head, last) = segment.split_at(segment.len() - 1);
    let v = ALPHABET.iter().position(|c| *c == last.as_bytes()[0]).unwrap();
    format!("{head}{}", ALPHABET[v | 1] as char)
}

/// Claims whose JSON encoding has `len % 3 == rem`, with a padding claim.
fn payload_with_len_mod3(rem: usize, extra: &str) -> String {
    (0..3)
        .map(|n| {
            let c = claims_with(|c| {
                c.insert("pad".into(), json!(format!("{}{extra}", "a".repeat(n))));
            });
            Value::Object(c).to_string()
        })
        .find(|p| p.len() % 3 == rem)
        .unwrap()
}

/// Big-endian `a - b` of equal length.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

/// Little-endian `a + b` of equal length, dropping the final carry.
fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut carry = 0u16;
    for i in 0..a.len() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = (s & 0xff) as u8;
        carry = s >> 8;
    }
    out
}

// ---------------------------------------------------------------------------
// The catalogue runner
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Expect {
    Accept,
    Reject(Rejection),
    /// `Rejection::Malformed` whose message contains this text.
    Malformed(String),
}

fn is(r: Rejection) -> Expect {
    Expect::Reject(r)
}

fn malformed(needle: impl Into<String>) -> Expect {
    Expect::Malformed(needle.into())
}

#[derive(Default)]
struct Catalogue {
    cases: usize,
    failures: Vec<String>,
}

impl Catalogue {
    fn case(&mut self, name: impl AsRef<str>, token: &str, expect: Expect) {
        self.case_in(name, token, &FX.profile, &RevocationState::default(), expect);
    }

    fn case_in(
        &mut self,
        name: impl AsRef<str>,
        token: &str,
        profile: &EffectiveProfile,
        revocations: &RevocationState,
        expect: Expect,
    ) {
        self.cases += 1;
        let got = run_in(token, profile, revocations);
        let ok = match (&expect, &got) {
            (Expect::Accept, Ok(_)) => true,
            (Expect::Reject(want), Err(got)) => want == got,
            (Expect::Malformed(needle), Err(Rejection::Malformed(msg))) => msg.contains(needle.as_str()),
            _ => false,
        };
        if !ok {
            let shown = match &got {
                Ok(t) => format!("ACCEPTED (sub {}, aud {}, kid {})", t.sub, t.aud, t.kid),
                Err(e) => format!("{e:?}"),
            };
            self.failures
                .push(format!("{}: expected {expect:?}, got {shown}", name.as_ref()));
        }
    }

    fn finish(self, what: &str) {
        eprintln!("{what}: {} cases", self.cases);
        assert!(
            self.failures.is_empty(),
            "{} of {} `{what}` cases failed:\n  {}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------

#[test]
fn genuine_tokens_are_accepted() {
    let token = genuine();
    let ok = run(&token).unwrap();
    assert_eq!(ok.iss, ISSUER);
    assert_eq!(ok.sub, "alice");
    assert_eq!(ok.aud, AUDIENCE);
    assert_eq!(ok.client_id, "app");
    assert_eq!(ok.sid, "sess-1");
    assert_eq!(ok.jti, "jti-0001");
    assert_eq!(ok.iat, NOW);
    assert_eq!(ok.exp, NOW + 300);
    assert_eq!(ok.kid, FX.es.kid());
    assert!(ok.has_scope("read") && ok.has_scope("write") && !ok.has_scope("admin"));

    let mut cat = Catalogue::default();
    for key in [&FX.es, &FX.ed, &FX.rs, &FX.ps] {
        cat.case(format!("genuine {}", key.alg()), &sign(key, &claims()), Expect::Accept);
    }
    cat.case(
        "genuine, no scope",
        &sign(&FX.es, &claims_with(|c| drop(c.remove("scope")))),
        Expect::Accept,
    );
    let h = json!({"alg": "ES256", "kid": FX.es.kid(), "typ": "application/at+jwt"}).to_string();
    cat.case(
        "typ application/at+jwt (RFC 7515 §4.1.9)",
        &sign_text(&FX.es, &h, &payload()),
        Expect::Accept,
    );
    cat.finish("controls");
}

// ---------------------------------------------------------------------------
// alg none and HMAC key confusion
// ---------------------------------------------------------------------------

#[test]
fn alg_none_in_every_spelling() {
    let mut cat = Catalogue::default();
    let genuine_sig = signature_of(&genuine());
    for alg in ["none", "None", "NONE", "nOnE"] {
        for kid in [Some(FX.es.kid()), None] {
            let h = match kid {
                Some(kid) => header(alg, kid),
                None => json!({"alg": alg, "typ": "at+jwt"}).to_string(),
            };
            let sigs: [(&str, &[u8]); 3] = [("empty", &[]), ("junk", b"signature"), ("genuine", &genuine_sig)];
            for (what, sig) in sigs {
                cat.case(
                    format!("alg {alg}, kid {kid:?}, {what} signature"),
                    &assemble(&h, &payload(), sig),
                    is(Rejection::AlgorithmNotAllowed),
                );
            }
            cat.case(
                format!("alg {alg}, kid {kid:?}, no signature segment"),
                &format!("{}.{}", enc(&h), enc(&payload())),
                malformed("it has 2"),
            );
        }
    }
    // Near misses of real names, genuinely signed: only the exact name passes.
    for alg in ["es256", "Es256", "ES256 ", " ES256", "ES256\u{0}", "ES-256", ""] {
        cat.case(
            format!("alg {alg:?} signed with the ES256 key"),
            &sign_text(&FX.es, &header(alg, FX.es.kid()), &payload()),
            is(Rejection::AlgorithmNotAllowed),
        );
    }
    let no_alg = json!({"kid": FX.es.kid(), "typ": "at+jwt"}).to_string();
    cat.case(
        "no alg, signed",
        &sign_text(&FX.es, &no_alg, &payload()),
        is(Rejection::AlgorithmNotAllowed),
    );
    for alg in [json!(null), json!(["ES256"]), json!(256)] {
        let h = json!({"alg": alg, "kid": FX.es.kid(), "typ": "at+jwt"}).to_string();
        cat.case(
            format!("alg {alg}, signed"),
            &sign_text(&FX.es, &h, &payload()),
            malformed("`alg` is not a string"),
        );
    }
    cat.finish("alg none");
}

/// Serialisations of the public keys an attacker might use as an HMAC secret.
fn hmac_secrets() -> Vec<(String, &'static SigningKey, Vec<u8>)> {
    let mut out: Vec<(String, &'static SigningKey, Vec<u8>)> = Vec::new();
    let fx: &'static Fixture = &FX;

    let es = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &fx.es_pkcs8).unwrap();
    let spki: PublicKeyX509Der<'static> = es.public_key().as_der().unwrap();
    let point = es.public_key().as_ref().to_vec();
    let jwk = serde_json::to_string(fx.es.public_jwk()).unwrap();
    let es_secrets = vec![
        (
            "SPKI PEM".to_owned(),
            pem("PUBLIC KEY", spki.as_ref(), "\n").into_bytes(),
        ),
        (
            "SPKI PEM, no final newline".to_owned(),
            pem("PUBLIC KEY", spki.as_ref(), "\n").trim_end().as_bytes().to_vec(),
        ),
        (
            "SPKI PEM, CRLF".to_owned(),
            pem("PUBLIC KEY", spki.as_ref(), "\r\n").into_bytes(),
        ),
        ("SPKI DER".to_owned(), spki.as_ref().to_vec()),
        ("SEC1 point 04||x||y".to_owned(), point.clone()),
        ("x||y".to_owned(), point[1..].to_vec()),
        ("JWK JSON".to_owned(), jwk.clone().into_bytes()),
        (
            "JWK JSON, pretty".to_owned(),
            serde_json::to_string_pretty(fx.es.public_jwk()).unwrap().into_bytes(),
        ),
        ("JWKS JSON".to_owned(), format!(r#"{{"keys":[{jwk}]}}"#).into_bytes()),
        ("kid text".to_owned(), fx.es.kid().as_bytes().to_vec()),
        ("x text".to_owned(), fx.es.public_jwk().x.clone().unwrap().into_bytes()),
    ];
    out.extend(es_secrets.into_iter().map(|(n, s)| (format!("ES256 {n}"), &fx.es, s)));

    let rs = RsaKeyPair::from_pkcs8(&fx.rs_pkcs8).unwrap();
    let rs_spki: PublicKeyX509Der<'static> = rs.public_key().as_der().unwrap();
    let rs_pkcs1 = rs.public_key().as_ref().to_vec();
    let n = b64::decode(fx.rs.public_jwk().n.as_deref().unwrap()).unwrap();
    let rs_secrets = vec![
        (
            "SPKI PEM".to_owned(),
            pem("PUBLIC KEY", rs_spki.as_ref(), "\n").into_bytes(),
        ),
        ("SPKI DER".to_owned(), rs_spki.as_ref().to_vec()),
        (
            "PKCS#1 PEM".to_owned(),
            pem("RSA PUBLIC KEY", &rs_pkcs1, "\n").into_bytes(),
        ),
        ("PKCS#1 DER".to_owned(), rs_pkcs1),
        ("modulus bytes".to_owned(), n),
        (
            "JWK JSON".to_owned(),
            serde_json::to_string(fx.rs.public_jwk()).unwrap().into_bytes(),
        ),
        ("n text".to_owned(), fx.rs.public_jwk().n.clone().unwrap().into_bytes()),
    ];
    out.extend(rs_secrets.into_iter().map(|(n, s)| (format!("RS256 {n}"), &fx.rs, s)));

    let ed = Ed25519KeyPair::from_pkcs8(&fx.ed_pkcs8).unwrap();
    let ed_spki: PublicKeyX509Der<'static> = ed.public_key().as_der().unwrap();
    let ed_secrets = vec![
        (
            "SPKI PEM".to_owned(),
            pem("PUBLIC KEY", ed_spki.as_ref(), "\n").into_bytes(),
        ),
        ("raw 32 bytes".to_owned(), ed.public_key().as_ref().to_vec()),
        (
            "JWK JSON".to_owned(),
            serde_json::to_string(fx.ed.public_jwk()).unwrap().into_bytes(),
        ),
    ];
    out.extend(ed_secrets.into_iter().map(|(n, s)| (format!("EdDSA {n}"), &fx.ed, s)));
    out
}

#[test]
fn hmac_with_the_public_key_as_secret() {
    let mut cat = Catalogue::default();
    let hmacs = [
        ("HS256", hmac::HMAC_SHA256),
        ("HS384", hmac::HMAC_SHA384),
        ("HS512", hmac::HMAC_SHA512),
    ];
    for (what, key, secret) in hmac_secrets() {
        for (hs, algorithm) in hmacs {
            let mac = hmac::Key::new(algorithm, &secret);
            // The classic: the header says HMAC and names the genuine kid.
            let h = enc(&header(hs, key.kid()));
            let input = format!("{h}.{}", enc(&payload()));
            let tag = hmac::sign(&mac, input.as_bytes());
            cat.case(
                format!("{hs} keyed with {what}"),
                &format!("{input}.{}", b64::encode(tag.as_ref())),
                is(Rejection::AlgorithmNotAllowed),
            );
            // The header keeps the key's own alg; the HMAC tag is the signature.
            let h = enc(&header(key.alg().as_str(), key.kid()));
            let input = format!("{h}.{}", enc(&payload()));
            let tag = hmac::sign(&mac, input.as_bytes());
            cat.case(
                format!("{hs} tag keyed with {what} under alg {}", key.alg()),
                &format!("{input}.{}", b64::encode(tag.as_ref())),
                is(Rejection::BadSignature),
            );
        }
    }
    cat.finish("hmac key confusion");
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

#[test]
fn tampered_payloads_keep_the_original_signature() {
    let mut cat = Catalogue::default();
    let token = genuine();
    let (h, _, sig) = segments(&token);
    let edits: [(&str, Map<String, Value>); 5] = [
        (
            "sub changed",
            claims_with(|c| drop(c.insert("sub".into(), json!("admin")))),
        ),
        (
            "aud changed",
            claims_with(|c| drop(c.insert("aud".into(), json!("billing")))),
        ),
        (
            "exp changed",
            claims_with(|c| drop(c.insert("exp".into(), json!(NOW + 3000)))),
        ),
        (
            "scope widened",
            claims_with(|c| drop(c.insert("scope".into(), json!("read write admin")))),
        ),
        ("sid removed", claims_with(|c| drop(c.remove("sid")))),
    ];
    for (what, c) in edits {
        let p = b64::encode(&serde_json::to_vec(&c).unwrap());
        cat.case(what, &format!("{h}.{p}.{sig}"), is(Rejection::BadSignature));
    }
    // Same claims, different bytes: members reordered, whitespace added.
    let reordered: Vec<String> = claims()
        .iter()
        .rev()
        .map(|(k, v)| format!("{}:{v}", json!(k)))
        .collect();
    let reordered = format!("{{{}}}", reordered.join(","));
    assert_eq!(
        serde_json::from_str::<Value>(&reordered).unwrap(),
        Value::Object(claims())
    );
    cat.case(
        "claims reordered",
        &format!("{h}.{}.{sig}", enc(&reordered)),
        is(Rejection::BadSignature),
    );
    let spaced = serde_json::to_string_pretty(&claims()).unwrap();
    cat.case(
        "payload re-serialised with whitespace",
        &format!("{h}.{}.{sig}", enc(&spaced)),
        is(Rejection::BadSignature),
    );
    // Splice: payload of one genuine token, signature of another from the same key.
    let other = sign(&FX.es, &claims_with(|c| drop(c.insert("sub".into(), json!("admin")))));
    let (_, other_p, _) = segments(&other);
    cat.case(
        "payload spliced from another genuine token",
        &format!("{h}.{other_p}.{sig}"),
        is(Rejection::BadSignature),
    );
    // Header changed (typ case) with the original signature.
    let h2 = json!({"alg": "ES256", "kid": FX.es.kid(), "typ": "AT+JWT"}).to_string();
    cat.case(
        "header re-written",
        &format!("{}.{}.{sig}", enc(&h2), segments(&token).1),
        is(Rejection::BadSignature),
    );
    cat.finish("tampered payload");
}

#[test]
fn damaged_signatures() {
    let mut cat = Catalogue::default();
    for key in [&FX.es, &FX.ed, &FX.rs, &FX.ps] {
        let alg = key.alg();
        let token = sign(key, &claims());
        let sig = signature_of(&token);
        let (h, p, sig_b64) = segments(&token);
        cat.case(
            format!("{alg} stripped signature"),
            &format!("{h}.{p}."),
            is(Rejection::BadSignature),
        );
        cat.case(
            format!("{alg} signature segment removed"),
            &format!("{h}.{p}"),
            malformed("it has 2"),
        );
        for keep in [sig.len() - 1, sig.len() / 2, 1] {
            cat.case(
                format!("{alg} signature truncated to {keep} bytes"),
                &with_signature(&token, &sig[..keep]),
                is(Rejection::BadSignature),
            );
        }
        cat.case(
            format!("{alg} signature missing its last base64 character"),
            &format!("{h}.{p}.{}", &sig_b64[..sig_b64.len() - 1]),
            malformed("signature segment"),
        );
        for (what, extra) in [("0x00", vec![0u8]), ("0xff", vec![0xff]), ("itself", sig.clone())] {
            let mut long = sig.clone();
            long.extend(extra);
            cat.case(
                format!("{alg} signature extended by {what}"),
                &with_signature(&token, &long),
                is(Rejection::BadSignature),
            );
        }
        let mut leading = vec![0u8];
        leading.extend(&sig);
        cat.case(
            format!("{alg} signature with a leading zero byte"),
            &with_signature(&token, &leading),
            is(Rejection::BadSignature),
        );
        cat.case(
            format!("{alg} all-zero signature"),
            &with_signature(&token, &vec![0u8; sig.len()]),
            is(Rejection::BadSignature),
        );
        cat.case(
            format!("{alg} all-0xff signature"),
            &with_signature(&token, &vec![0xffu8; sig.len()]),
            is(Rejection::BadSignature),
        );
        for bit in 0..sig.len() * 8 {
            let mut s = sig.clone();
            s[bit / 8] ^= 1 << (bit % 8);
            cat.case(
                format!("{alg} signature bit {bit} flipped"),
                &with_signature(&token, &s),
                is(Rejection::BadSignature),
            );
        }
        // Another genuine signature by the same key over different claims.
        let other = sign(key, &claims_with(|c| drop(c.insert("jti".into(), json!("other")))));
        cat.case(
            format!("{alg} signature borrowed from another genuine token"),
            &with_signature(&token, &signature_of(&other)),
            is(Rejection::BadSignature),
        );
    }
    cat.finish("damaged signatures");
}

#[test]
fn psychic_and_malleable_ecdsa() {
    let mut cat = Catalogue::default();
    let token = genuine();
    let sig = signature_of(&token);
    let (r, s) = sig.split_at(32);
    let zero = [0u8; 32];
    let one = {
        let mut o = [0u8; 32];
        o[31] = 1;
        o
    };
    let n_minus_1 = sub_be(&P256_N, &one);
    let cat_rs = |a: &[u8], b: &[u8]| [a, b].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("r = s = 0 (CVE-2022-21449)", cat_rs(&zero, &zero)),
        ("r = s = 0xff..ff", cat_rs(&[0xff; 32], &[0xff; 32])),
        ("r = 0, s = n - 1", cat_rs(&zero, &n_minus_1)),
        ("r = 0, genuine s", cat_rs(&zero, s)),
        ("genuine r, s = 0", cat_rs(r, &zero)),
        ("r = s = n", cat_rs(&P256_N, &P256_N)),
        ("r = n, genuine s", cat_rs(&P256_N, s)),
        ("genuine r, s = n", cat_rs(r, &P256_N)),
        ("r = s = 1", cat_rs(&one, &one)),
        ("r = s = n - 1", cat_rs(&n_minus_1, &n_minus_1)),
        ("r and s swapped", cat_rs(s, r)),
    ];
    for (what, forged) in cases {
        cat.case(
            format!("ES256 {what}"),
            &with_signature(&token, &forged),
            is(Rejection::BadSignature),
        );
    }
    // The same signature in ASN.1 DER instead of JOSE r||s.
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &FX.es_pkcs8).unwrap();
    let (h, p, _) = segments(&token);
    let der = kp.sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes()).unwrap();
    cat.case(
        "ES256 genuine signature in DER encoding",
        &with_signature(&token, der.as_ref()),
        is(Rejection::BadSignature),
    );

    // Ed25519: S + L is the same signature to a lax verifier (malleability).
    let ed_token = sign(&FX.ed, &claims());
    let ed_sig = signature_of(&ed_token);
    let mut high = ed_sig[..32].to_vec();
    high.extend(add_le(&ed_sig[32..], &ED25519_L));
    cat.case(
        "EdDSA S replaced by S + L",
        &with_signature(&ed_token, &high),
        is(Rejection::BadSignature),
    );
    cat.case(
        "EdDSA R = S = 0",
        &with_signature(&ed_token, &[0u8; 64]),
        is(Rejection::BadSignature),
    );

    // RSA: the modulus itself, and 1.
    let rs_token = sign(&FX.rs, &claims());
    let n = b64::decode(FX.rs.public_jwk().n.as_deref().unwrap()).unwrap();
    cat.case(
        "RS256 signature = modulus",
        &with_signature(&rs_token, &n),
        is(Rejection::BadSignature),
    );
    let mut one_rsa = vec![0u8; n.len()];
    one_rsa[n.len() - 1] = 1;
    cat.case(
        "RS256 signature = 1",
        &with_signature(&rs_token, &one_rsa),
        is(Rejection::BadSignature),
    );
    cat.finish("psychic and malleable signatures");
}

/// ECDSA's own malleability: (r, n - s) verifies whenever (r, s) does. It
/// forges nothing (the claims are the signer's), but gives a second token
/// string for one token. Recorded here so a change in behaviour is noticed.
#[test]
fn ecdsa_high_s_twin_carries_the_same_claims() {
    let token = genuine();
    let sig = signature_of(&token);
    let (r, s) = sig.split_at(32);
    let twin = with_signature(&token, &[r, &sub_be(&P256_N, s)].concat());
    assert_ne!(twin, token);
    match run(&twin) {
        Ok(t) => assert_eq!(t, run(&token).unwrap(), "the twin carries exactly the genuine claims"),
        Err(e) => assert_eq!(e, Rejection::BadSignature),
    }
}

// ---------------------------------------------------------------------------
// Keys and header members
// ---------------------------------------------------------------------------

#[test]
fn attacker_keys_and_key_carrying_headers() {
    let mut cat = Catalogue::default();
    let p = payload();
    for (attacker, genuine_key) in [
        (&FX.attacker_es, &FX.es),
        (&FX.attacker_ed, &FX.ed),
        (&FX.attacker_rs, &FX.rs),
    ] {
        let alg = attacker.alg().as_str();
        cat.case(
            format!("{alg} attacker key under the genuine kid"),
            &sign_text(attacker, &header(alg, genuine_key.kid()), &p),
            is(Rejection::BadSignature),
        );
        cat.case(
            format!("{alg} attacker key under its own kid"),
            &sign(attacker, &claims()),
            is(Rejection::UnknownKey),
        );
        cat.case(
            format!("{alg} attacker key, no kid"),
            &sign_text(attacker, &json!({"alg": alg, "typ": "at+jwt"}).to_string(), &p),
            is(Rejection::UnknownKey),
        );
        let jwk = serde_json::to_value(attacker.public_jwk()).unwrap();
        cat.case(
            format!("{alg} embedded jwk with the attacker key, genuine kid"),
            &sign_text(attacker, &header_plus(alg, genuine_key.kid(), json!({"jwk": jwk})), &p),
            is(Rejection::ForbiddenHeader("jwk".into())),
        );
        let h = json!({"alg": alg, "typ": "at+jwt", "jwk": jwk}).to_string();
        cat.case(
            format!("{alg} embedded jwk with the attacker key, no kid"),
            &sign_text(attacker, &h, &p),
            is(Rejection::ForbiddenHeader("jwk".into())),
        );
    }
    let attacker_jwk = serde_json::to_value(FX.attacker_es.public_jwk()).unwrap();
    let pointing: [(&str, Value); 8] = [
        ("jku", json!("http://attacker/jwks.json")),
        ("x5u", json!("http://attacker/cert.pem")),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ"])),
        ("x5t", json!("q2m3L2p4ZmFrZQ")),
        ("x5t#S256", json!("q2m3L2p4ZmFrZQ")),
        ("jwk", attacker_jwk),
        ("b64", json!(false)),
        ("zip", json!("DEF")),
    ];
    for (member, value) in pointing {
        for (who, signer) in [("attacker", &FX.attacker_es), ("genuine key", &FX.es)] {
            let h = header_plus("ES256", FX.es.kid(), json!({ member: value.clone() }));
            cat.case(
                format!("`{member}` header, signed by the {who}"),
                &sign_text(signer, &h, &p),
                is(Rejection::ForbiddenHeader(member.into())),
            );
        }
    }
    for (what, crit) in [
        ("[\"exp\"]", json!({"crit": ["exp"]})),
        (
            "unknown extension",
            json!({"crit": ["urn:attacker:ext"], "urn:attacker:ext": true}),
        ),
        ("[]", json!({"crit": []})),
    ] {
        cat.case(
            format!("crit {what}, signed genuinely"),
            &sign_text(&FX.es, &header_plus("ES256", FX.es.kid(), crit), &p),
            is(Rejection::ForbiddenHeader("crit".into())),
        );
    }
    cat.finish("attacker keys and headers");
}

#[test]
fn kid_injection() {
    let mut cat = Catalogue::default();
    let p = payload();
    let kids = [
        "../../etc/passwd".to_owned(),
        "/dev/null".to_owned(),
        "' OR 1=1 --".to_owned(),
        "\" OR \"\"=\"".to_owned(),
        "%2e%2e%2f%2e%2e%2f".to_owned(),
        "http://attacker/key".to_owned(),
        String::new(),
        format!("{}\u{0}", FX.es.kid()),
        format!("{} ", FX.es.kid()),
        FX.es.kid().to_ascii_uppercase(),
        "k".repeat(5000),
    ];
    for kid in &kids {
        let shown: String = kid.chars().take(40).collect();
        for (who, signer) in [("attacker", &FX.attacker_es), ("genuine key", &FX.es)] {
            cat.case(
                format!("kid {shown:?} ({} chars), signed by the {who}", kid.len()),
                &sign_text(signer, &header("ES256", kid), &p),
                is(Rejection::UnknownKey),
            );
        }
    }
    cat.case(
        "kid of 10 KiB",
        &sign_text(&FX.attacker_es, &header("ES256", &"k".repeat(10 * 1024)), &p),
        is(Rejection::TooLarge),
    );
    for kid in [json!(1), json!(null), json!([FX.es.kid()]), json!({"kid": FX.es.kid()})] {
        let h = json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}).to_string();
        cat.case(
            format!("kid {kid}"),
            &sign_text(&FX.es, &h, &p),
            malformed("`kid` is not a string"),
        );
    }
    cat.finish("kid injection");
}

#[test]
fn algorithm_must_fit_the_key_and_the_profile() {
    let mut cat = Catalogue::default();
    let p = payload();
    cat.case(
        "EdDSA header on the ES256 kid, signed with the EdDSA key",
        &sign_text(&FX.ed, &header("EdDSA", FX.es.kid()), &p),
        is(Rejection::AlgorithmNotAllowed),
    );
    cat.case(
        "ES256 header on the EdDSA kid, signed with the ES256 key",
        &sign_text(&FX.es, &header("ES256", FX.ed.kid()), &p),
        is(Rejection::AlgorithmNotAllowed),
    );
    cat.case(
        "PS256 header on the RS256 kid, PSS signature by the RS256 key",
        &sign_text(&FX.rs_as_pss, &header("PS256", FX.rs.kid()), &p),
        is(Rejection::AlgorithmNotAllowed),
    );
    cat.case(
        "RS256 header on the RS256 kid, PSS signature by the RS256 key",
        &sign_text(&FX.rs_as_pss, &header("RS256", FX.rs.kid()), &p),
        is(Rejection::BadSignature),
    );
    cat.case(
        "RS256 header on the PS256 kid, signed with the RS256 key",
        &sign_text(&FX.rs, &header("RS256", FX.ps.kid()), &p),
        is(Rejection::AlgorithmNotAllowed),
    );
    let none = RevocationState::default();
    let only_ed = profile(&["EdDSA"], &LocalPolicy::default());
    cat.case_in(
        "ES256 token, authority profile allows only EdDSA",
        &genuine(),
        &only_ed,
        &none,
        is(Rejection::AlgorithmNotAllowed),
    );
    cat.case_in(
        "EdDSA token, authority profile allows only EdDSA",
        &sign(&FX.ed, &claims()),
        &only_ed,
        &none,
        Expect::Accept,
    );
    let local = profile(
        &["ES256", "EdDSA", "RS256", "PS256"],
        &LocalPolicy {
            algorithms: Some(vec![Algorithm::EdDSA]),
            ..LocalPolicy::default()
        },
    );
    for key in [&FX.es, &FX.rs, &FX.ps] {
        cat.case_in(
            format!("{} token, local policy allows only EdDSA", key.alg()),
            &sign(key, &claims()),
            &local,
            &none,
            is(Rejection::AlgorithmNotAllowed),
        );
    }
    cat.case_in(
        "EdDSA token, local policy allows only EdDSA",
        &sign(&FX.ed, &claims()),
        &local,
        &none,
        Expect::Accept,
    );
    cat.finish("algorithm policy");
}

// ---------------------------------------------------------------------------
// Structure, size, JSON and base64url
// ---------------------------------------------------------------------------

#[test]
fn size_and_nesting() {
    let mut cat = Catalogue::default();
    // The largest genuine token under the cap is accepted; one byte of claims more is refused.
    let h = enc(&header("ES256", FX.es.kid()));
    let padded = |n: usize| {
        let c = claims_with(|c| drop(c.insert("pad".into(), json!("a".repeat(n)))));
        enc(&Value::Object(c).to_string())
    };
    let fixed = h.len() + 2 + 86;
    let estimate = (MAX_TOKEN_BYTES - fixed - padded(0).len()) * 3 / 4;
    let n = (estimate.saturating_sub(8)..MAX_TOKEN_BYTES)
        .take_while(|n| fixed + padded(*n).len() <= MAX_TOKEN_BYTES)
        .last()
        .unwrap();
    let at_cap = sign_segments(&FX.es, &h, &padded(n));
    assert!(at_cap.len() <= MAX_TOKEN_BYTES && at_cap.len() + 4 > MAX_TOKEN_BYTES);
    cat.case(
        format!("genuine token of {} bytes", at_cap.len()),
        &at_cap,
        Expect::Accept,
    );
    let over = sign_segments(&FX.es, &h, &padded(n + 3));
    assert!(over.len() > MAX_TOKEN_BYTES);
    cat.case(
        format!("genuine token of {} bytes", over.len()),
        &over,
        is(Rejection::TooLarge),
    );
    cat.case("1 MiB of junk", &"a".repeat(1 << 20), is(Rejection::TooLarge));
    cat.case(
        "oversized forged token with alg none",
        &assemble(&header("none", FX.es.kid()), &"x".repeat(9000), b""),
        is(Rejection::TooLarge),
    );

    // Nesting: the claims object is depth 1, so 15 arrays inside it is the limit.
    let nested = |depth: usize, open: &str, close: &str| {
        let p = payload();
        format!(
            "{},\"deep\":{}1{}}}",
            &p[..p.len() - 1],
            open.repeat(depth),
            close.repeat(depth)
        )
    };
    let hdr = header("ES256", FX.es.kid());
    cat.case(
        "15 nested arrays in a claim",
        &sign_text(&FX.es, &hdr, &nested(15, "[", "]")),
        Expect::Accept,
    );
    for depth in [16, 100, 2500] {
        cat.case(
            format!("{depth} nested arrays in a claim, signed"),
            &sign_text(&FX.es, &hdr, &nested(depth, "[", "]")),
            malformed("nesting too deep"),
        );
    }
    let objects = {
        let p = payload();
        format!(
            "{},\"deep\":{}1{}}}",
            &p[..p.len() - 1],
            "{\"a\":".repeat(100),
            "}".repeat(100)
        )
    };
    cat.case(
        "100 nested objects in a claim, signed",
        &sign_text(&FX.es, &hdr, &objects),
        malformed("nesting too deep"),
    );
    let deep_header = header_plus("ES256", FX.es.kid(), json!({}));
    let deep_header = format!(
        "{},\"deep\":{}1{}}}",
        &deep_header[..deep_header.len() - 1],
        "[".repeat(100),
        "]".repeat(100)
    );
    cat.case(
        "100 nested arrays in the header, signed",
        &sign_text(&FX.es, &deep_header, &payload()),
        malformed("header is not acceptable JSON"),
    );
    cat.finish("size and nesting");
}

#[test]
fn duplicate_members_even_when_signed() {
    let mut cat = Catalogue::default();
    let p = payload();
    let body = &p[..p.len() - 1];
    let hdr = header("ES256", FX.es.kid());
    let dup_claims = [
        ("sub", r#""sub":"admin""#),
        ("aud", r#""aud":"billing""#),
        ("exp", r#""exp":99999999999"#),
        ("iss", r#""iss":"https://evil.test""#),
        ("scope", r#""scope":"admin""#),
    ];
    for (name, extra) in dup_claims {
        cat.case(
            format!("claim `{name}` twice"),
            &sign_text(&FX.es, &hdr, &format!("{body},{extra}}}")),
            malformed(match name {
                "sub" => "duplicate member `sub`",
                "aud" => "duplicate member `aud`",
                "exp" => "duplicate member `exp`",
                "iss" => "duplicate member `iss`",
                _ => "duplicate member `scope`",
            }),
        );
    }
    cat.case(
        "claim `sub` twice with the same value",
        &sign_text(&FX.es, &hdr, &format!(r#"{body},"sub":"alice"}}"#)),
        malformed("duplicate member `sub`"),
    );
    cat.case(
        "duplicate member inside `act`",
        &sign_text(&FX.es, &hdr, &format!(r#"{body},"act":{{"sub":"a","sub":"b"}}}}"#)),
        malformed("duplicate member `sub`"),
    );
    cat.case(
        "claim key escaped differently (`s\\u0075b`)",
        &sign_text(&FX.es, &hdr, &format!(r#"{body},"s\u0075b":"admin"}}"#)),
        malformed("duplicate member `sub`"),
    );
    let h = &hdr[..hdr.len() - 1];
    for (what, extra, needle) in [
        (
            "`alg` twice (ES256 then none)",
            r#""alg":"none""#,
            "duplicate member `alg`",
        ),
        ("`alg` twice (same value)", r#""alg":"ES256""#, "duplicate member `alg`"),
        ("`kid` twice", r#""kid":"../../etc/passwd""#, "duplicate member `kid`"),
        ("`typ` twice", r#""typ":"JWT""#, "duplicate member `typ`"),
    ] {
        cat.case(
            format!("header {what}"),
            &sign_text(&FX.es, &format!("{h},{extra}}}"), &p),
            malformed(needle),
        );
    }
    cat.finish("duplicate members");
}

#[test]
fn non_canonical_base64url() {
    let mut cat = Catalogue::default();
    let token = genuine();
    let (h, p, s) = segments(&token);
    // Padding.
    cat.case(
        "signature padded with `==`",
        &format!("{h}.{p}.{s}=="),
        malformed("signature segment"),
    );
    let hdr = header("ES256", FX.es.kid());
    for (rem, pad) in [(1, "=="), (2, "=")] {
        let body = payload_with_len_mod3(rem, "");
        cat.case(
            format!("payload padded with `{pad}`, signed"),
            &sign_segments(&FX.es, &enc(&hdr), &format!("{}{pad}", enc(&body))),
            malformed("payload segment"),
        );
    }
    // A header whose encoding needs padding.
    let hdr_tail = (0..3)
        .map(|n| header_plus("ES256", FX.es.kid(), json!({"x": "a".repeat(n)})))
        .find(|h| h.len() % 3 != 0)
        .unwrap();
    cat.case(
        "header padded, signed",
        &sign_segments(&FX.es, &with_padding(enc(&hdr_tail)), &enc(&payload())),
        malformed("header segment"),
    );
    // The standard alphabet (`+`, `/`) instead of the URL-safe one.
    let body = (0..3)
        .map(|n| payload_with_len_mod3(0, &format!("{}???>>>~~~", "a".repeat(n))))
        .find(|b| enc(b).contains(['-', '_']))
        .unwrap();
    cat.case(
        "payload in the standard alphabet, signed",
        &sign_segments(&FX.es, &enc(&hdr), &to_standard_alphabet(&enc(&body))),
        malformed("payload segment"),
    );
    let with_std_sig = (0..200)
        .map(|_| genuine())
        .find(|t| segments(t).2.contains(['-', '_']))
        .unwrap();
    let (h2, p2, s2) = segments(&with_std_sig);
    cat.case(
        "signature in the standard alphabet",
        &format!("{h2}.{p2}.{}", to_standard_alphabet(s2)),
        malformed("signature segment"),
    );
    // Trailing bits set.
    cat.case(
        "signature with a trailing bit set",
        &format!("{h}.{p}.{}", with_trailing_bit(s)),
        malformed("signature segment"),
    );
    for rem in [1, 2] {
        let body = enc(&payload_with_len_mod3(rem, ""));
        cat.case(
            format!("payload ({rem} byte tail) with a trailing bit set, signed"),
            &sign_segments(&FX.es, &enc(&hdr), &with_trailing_bit(&body)),
            malformed("payload segment"),
        );
    }
    cat.case(
        "header with a trailing bit set, signed",
        &sign_segments(&FX.es, &with_trailing_bit(&enc(&hdr_tail)), &enc(&payload())),
        malformed("header segment"),
    );
    // Characters outside any base64 alphabet.
    let mid = s.len() / 2;
    for (what, inserted) in [("a newline", "\n"), ("a space", " "), ("`%`", "%"), ("`*`", "*")] {
        cat.case(
            format!("signature with {what} inside"),
            &format!("{h}.{p}.{}{inserted}{}", &s[..mid], &s[mid..]),
            malformed("signature segment"),
        );
    }
    cat.case(
        "leading space before the token",
        &format!(" {token}"),
        malformed("header segment"),
    );
    cat.case(
        "payload with a newline inside, signed",
        &sign_segments(&FX.es, &enc(&hdr), &format!("{}\n{}", &p[..4], &p[4..])),
        malformed("payload segment"),
    );
    cat.finish("non-canonical base64url");
}

#[test]
fn segment_counts_and_shapes() {
    let mut cat = Catalogue::default();
    let token = genuine();
    let (h, p, s) = segments(&token);
    for (what, t, n) in [
        ("empty string", String::new(), 1),
        ("one segment", h.to_owned(), 1),
        ("two segments", format!("{h}.{p}"), 2),
        ("four segments", format!("{token}.{s}"), 4),
        ("four segments, empty last", format!("{token}."), 4),
        ("four segments, empty middle", format!("{h}.{p}..{s}"), 4),
        ("five segments (JWE shape)", format!("{h}.{p}.{s}.{p}.{s}"), 5),
        ("only dots", "....".to_owned(), 5),
    ] {
        cat.case(what, &t, malformed(format!("it has {n}")));
    }
    cat.case("three empty segments", "..", malformed("header"));
    for (what, h_text) in [
        ("header is an array", r#"["ES256"]"#),
        ("header is a string", r#""ES256""#),
        ("header is not JSON", "alg=ES256"),
        ("header with trailing data", r#"{"alg":"ES256"} x"#),
    ] {
        cat.case(
            what,
            &sign_segments(&FX.es, &enc(h_text), p),
            malformed("header is not acceptable JSON"),
        );
    }
    let hdr = header("ES256", FX.es.kid());
    for (what, body) in [
        ("payload is an array", "[1]"),
        ("payload is empty", ""),
        ("payload is a JSON string", "\"claims\""),
        ("payload with trailing data", "{} {}"),
    ] {
        cat.case(
            what,
            &sign_text(&FX.es, &hdr, body),
            malformed("payload is not acceptable JSON"),
        );
    }
    cat.finish("segments and shapes");
}

#[test]
fn wrong_token_types() {
    let mut cat = Catalogue::default();
    let p = payload();
    for typ in [
        "JWT",
        "jwt",
        "application/jwt",
        "",
        "at+jwt ",
        "at_jwt",
        "application/at+jwt+x",
        "dpop+jwt",
    ] {
        let h = json!({"alg": "ES256", "kid": FX.es.kid(), "typ": typ}).to_string();
        cat.case(
            format!("typ {typ:?}, signed genuinely"),
            &sign_text(&FX.es, &h, &p),
            is(Rejection::WrongType),
        );
    }
    cat.case(
        "typ missing, signed genuinely",
        &sign_text(&FX.es, &json!({"alg": "ES256", "kid": FX.es.kid()}).to_string(), &p),
        is(Rejection::WrongType),
    );
    cat.case(
        "sign_compact with typ JWT",
        &FX.es.sign_compact("JWT", &claims()).unwrap(),
        is(Rejection::WrongType),
    );
    let h = json!({"alg": "ES256", "kid": FX.es.kid(), "typ": ["at+jwt"]}).to_string();
    cat.case(
        "typ as an array",
        &sign_text(&FX.es, &h, &p),
        malformed("`typ` is not a string"),
    );
    cat.finish("token types");
}

#[test]
fn delegation_chains() {
    let mut cat = Catalogue::default();
    let chain = |n: usize| {
        let mut act: Option<Value> = None;
        for i in 0..n {
            let mut link = json!({ "sub": format!("svc-{i}") });
            if let (Some(prev), Some(obj)) = (act.take(), link.as_object_mut()) {
                obj.insert("act".into(), prev);
            }
            act = Some(link);
        }
        act.unwrap_or(Value::Null)
    };
    for n in 1..=4 {
        cat.case(
            format!("act chain of {n}"),
            &sign(&FX.es, &claims_with(set("act", chain(n)))),
            Expect::Accept,
        );
    }
    cat.case(
        "act chain of 5 (profile allows 4)",
        &sign(&FX.es, &claims_with(set("act", chain(5)))),
        is(Rejection::DelegationTooDeep),
    );
    cat.case(
        "act chain of 12",
        &sign(&FX.es, &claims_with(set("act", chain(12)))),
        is(Rejection::DelegationTooDeep),
    );
    for (name, bad) in [
        ("act as a string", json!("svc-1")),
        ("act without sub", json!({"client_id": "svc-1"})),
        ("act with empty sub", json!({"sub": ""})),
        ("act with numeric sub", json!({"sub": 7})),
        ("nested act malformed", json!({"sub": "svc-1", "act": ["svc-0"]})),
    ] {
        cat.case(
            name,
            &sign(&FX.es, &claims_with(set("act", bad))),
            is(Rejection::MissingClaim("act".into())),
        );
    }
    let none = RevocationState::default();
    let direct_only = profile(
        &["ES256"],
        &LocalPolicy {
            max_delegation_depth: Some(0),
            ..LocalPolicy::default()
        },
    );
    cat.case_in(
        "act chain of 1, local policy accepts no delegation",
        &sign(&FX.es, &claims_with(set("act", chain(1)))),
        &direct_only,
        &none,
        is(Rejection::DelegationTooDeep),
    );
    cat.case_in(
        "no act, local policy accepts no delegation",
        &sign(&FX.es, &claims()),
        &direct_only,
        &none,
        Expect::Accept,
    );
    let delegated_only = profile(
        &["ES256"],
        &LocalPolicy {
            require_delegation: true,
            ..LocalPolicy::default()
        },
    );
    cat.case_in(
        "no act, local policy requires delegation",
        &sign(&FX.es, &claims()),
        &delegated_only,
        &none,
        is(Rejection::DelegationRequired),
    );
    cat.case_in(
        "act chain of 2, local policy requires delegation",
        &sign(&FX.es, &claims_with(set("act", chain(2)))),
        &delegated_only,
        &none,
        Expect::Accept,
    );
    assert!(
        EffectiveProfile::new(
            &served(&["ES256"]),
            &LocalPolicy {
                max_delegation_depth: Some(5),
                ..LocalPolicy::default()
            }
        )
        .is_err(),
        "a local policy cannot loosen the authority's depth"
    );
    cat.finish("delegation");
}

// ---------------------------------------------------------------------------
// Certificate-bound tokens (RFC 8705)
// ---------------------------------------------------------------------------

fn presented(
    token: &str,
    cert: Option<&PresentedCertificate>,
    revocations: &RevocationState,
) -> Result<VerifiedToken, Rejection> {
    validate_presented(
        token,
        &ValidationContext {
            keys: &FX.ring,
            profile: &FX.profile,
            issuer: ISSUER,
            audience: AUDIENCE,
            revocations,
            now: NOW,
        },
        cert,
    )
}

#[test]
fn certificate_bindings() {
    let mine = PresentedCertificate::from_der(b"the caller's certificate");
    let theirs = PresentedCertificate::from_der(b"another certificate");
    let thumb = x5t_s256(mine.der());
    let bound = sign(&FX.es, &claims_with(set("cnf", json!({"x5t#S256": thumb}))));
    let unbound = genuine();
    let none = RevocationState::default();

    let ok = presented(&bound, Some(&mine), &none).unwrap();
    assert_eq!(ok.cnf_x5t_s256.as_deref(), Some(thumb.as_str()));
    assert_eq!(ok.sub, "alice");
    assert_eq!(
        presented(&bound, Some(&theirs), &none).unwrap_err(),
        Rejection::CertificateMismatch
    );
    assert_eq!(
        presented(&bound, None, &none).unwrap_err(),
        Rejection::BoundTokenWithoutCertificate
    );
    assert_eq!(
        run(&bound).unwrap_err(),
        Rejection::BoundTokenWithoutCertificate,
        "validate is validate_presented with no certificate"
    );
    for cert in [None, Some(&mine), Some(&theirs)] {
        let t = presented(&unbound, cert, &none).unwrap();
        assert_eq!(t.cnf_x5t_s256, None);
        assert_eq!(t, run(&unbound).unwrap());
    }
    // Every other check still runs first: revocation wins over a good binding.
    assert_eq!(
        presented(&bound, Some(&mine), &revoked(&[("session", "sess-1", NOW)])).unwrap_err(),
        Rejection::Revoked(RevokedBy::Session)
    );

    let mut cat = Catalogue::default();
    let unsupported = || is(Rejection::UnsupportedConfirmation);
    let malformed = || is(Rejection::MissingClaim("cnf".into()));
    for (name, cnf, expect) in [
        ("only jkt", json!({"jkt": thumb}), unsupported()),
        (
            "x5t#S256 beside jkt",
            json!({"x5t#S256": thumb, "jkt": thumb}),
            unsupported(),
        ),
        (
            "x5t#S256 beside an unknown member",
            json!({"x5t#S256": thumb, "x": 1}),
            unsupported(),
        ),
        ("SHA-1 x5t", json!({"x5t": thumb}), unsupported()),
        ("name in another case", json!({"X5T#S256": thumb}), unsupported()),
        ("empty cnf", json!({}), malformed()),
        ("cnf as an array", json!([thumb]), malformed()),
        ("cnf null", Value::Null, malformed()),
        ("thumbprint empty", json!({"x5t#S256": ""}), malformed()),
        (
            "thumbprint 42 characters",
            json!({"x5t#S256": &thumb[..42]}),
            malformed(),
        ),
        (
            "thumbprint padded",
            json!({"x5t#S256": format!("{thumb}=")}),
            malformed(),
        ),
        (
            "thumbprint in the standard alphabet",
            json!({"x5t#S256": standard_b64(&b64::decode(&thumb).unwrap())}),
            malformed(),
        ),
        (
            "thumbprint with trailing bits set",
            json!({"x5t#S256": with_trailing_bit(&thumb)}),
            malformed(),
        ),
        (
            "thumbprint of SHA-384 length",
            json!({"x5t#S256": b64::encode(&[7; 48])}),
            malformed(),
        ),
        ("thumbprint as bytes", json!({"x5t#S256": [1, 2, 3]}), malformed()),
    ] {
        cat.case(
            format!("{name}, no certificate"),
            &sign(&FX.es, &claims_with(set("cnf", cnf.clone()))),
            expect,
        );
    }
    cat.finish("certificate bindings");
    for cnf in [json!({"jkt": thumb}), json!({"x5t#S256": &thumb[..42]})] {
        let token = sign(&FX.es, &claims_with(set("cnf", cnf)));
        assert!(
            presented(&token, Some(&mine), &none).is_err(),
            "a cnf the verifier cannot check is refused with a certificate too"
        );
    }
}

// ---------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------

/// An edit of the genuine claims.
type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;

fn set(name: &'static str, value: Value) -> impl FnOnce(&mut Map<String, Value>) {
    move |c| drop(c.insert(name.to_owned(), value))
}

#[test]
fn claims_are_checked() {
    let mut cat = Catalogue::default();
    let t = |edit: Edit| sign(&FX.es, &claims_with(edit));
    let cases: Vec<(&str, Edit, Expect)> = vec![
        // Audience.
        (
            "another audience",
            Box::new(set("aud", json!("billing"))),
            is(Rejection::WrongAudience),
        ),
        (
            "audience differs in case",
            Box::new(set("aud", json!("Orders"))),
            is(Rejection::WrongAudience),
        ),
        (
            "audience with a suffix",
            Box::new(set("aud", json!("orders "))),
            is(Rejection::WrongAudience),
        ),
        (
            "audience list without us",
            Box::new(set("aud", json!(["billing", "ledger"]))),
            is(Rejection::WrongAudience),
        ),
        (
            "empty audience list",
            Box::new(set("aud", json!([]))),
            is(Rejection::WrongAudience),
        ),
        (
            "aud as a number",
            Box::new(set("aud", json!(1))),
            is(Rejection::MissingClaim("aud".into())),
        ),
        (
            "aud as null",
            Box::new(set("aud", json!(null))),
            is(Rejection::MissingClaim("aud".into())),
        ),
        (
            "aud as an object",
            Box::new(set("aud", json!({"aud": AUDIENCE}))),
            is(Rejection::MissingClaim("aud".into())),
        ),
        (
            "aud list with a number",
            Box::new(set("aud", json!([AUDIENCE, 1]))),
            is(Rejection::MissingClaim("aud".into())),
        ),
        // Issuer.
        (
            "wrong issuer",
            Box::new(set("iss", json!("https://evil.test"))),
            is(Rejection::WrongIssuer),
        ),
        (
            "issuer with a trailing slash",
            Box::new(set("iss", json!("https://auth.test/"))),
            is(Rejection::WrongIssuer),
        ),
        (
            "issuer over http",
            Box::new(set("iss", json!("http://auth.test"))),
            is(Rejection::WrongIssuer),
        ),
        (
            "issuer differs in case",
            Box::new(set("iss", json!("https://AUTH.test"))),
            is(Rejection::WrongIssuer),
        ),
        // Expiry, with a leeway of 30 s.
        (
            "expired beyond leeway",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("exp".into(), json!(NOW - 31));
                c.insert("iat".into(), json!(NOW - 331));
            }),
            is(Rejection::Expired),
        ),
        (
            "expired exactly at leeway",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("exp".into(), json!(NOW - 30));
                c.insert("iat".into(), json!(NOW - 330));
            }),
            is(Rejection::Expired),
        ),
        (
            "expired within leeway",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("exp".into(), json!(NOW - 29));
                c.insert("iat".into(), json!(NOW - 329));
            }),
            Expect::Accept,
        ),
        ("expiring now", Box::new(set("exp", json!(NOW))), Expect::Accept),
        (
            "long expired",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("exp".into(), json!(0));
                c.insert("iat".into(), json!(-300));
            }),
            is(Rejection::Expired),
        ),
        // Not before.
        (
            "nbf beyond leeway",
            Box::new(set("nbf", json!(NOW + 31))),
            is(Rejection::NotYetValid),
        ),
        (
            "nbf within leeway",
            Box::new(set("nbf", json!(NOW + 30))),
            Expect::Accept,
        ),
        ("nbf in the past", Box::new(set("nbf", json!(NOW - 10))), Expect::Accept),
        (
            "nbf as a string",
            Box::new(set("nbf", json!("0"))),
            is(Rejection::MissingClaim("nbf".into())),
        ),
        // Issued at.
        (
            "iat in the future beyond leeway",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("iat".into(), json!(NOW + 31));
                c.insert("exp".into(), json!(NOW + 331));
            }),
            is(Rejection::IssuedInFuture),
        ),
        (
            "iat in the future within leeway",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("iat".into(), json!(NOW + 30));
                c.insert("exp".into(), json!(NOW + 330));
            }),
            Expect::Accept,
        ),
        // Lifetime, at most 3600 s.
        (
            "lifetime 3601 s",
            Box::new(set("exp", json!(NOW + 3601))),
            is(Rejection::LifetimeTooLong),
        ),
        (
            "lifetime 3600 s",
            Box::new(set("exp", json!(NOW + 3600))),
            Expect::Accept,
        ),
        (
            "exp = i64::MAX",
            Box::new(set("exp", json!(i64::MAX))),
            is(Rejection::LifetimeTooLong),
        ),
        (
            "iat = i64::MIN",
            Box::new(set("iat", json!(i64::MIN))),
            is(Rejection::LifetimeTooLong),
        ),
        (
            "iat long ago",
            Box::new(set("iat", json!(0))),
            is(Rejection::LifetimeTooLong),
        ),
        // Types.
        (
            "exp as a string",
            Box::new(set("exp", json!((NOW + 300).to_string()))),
            is(Rejection::MissingClaim("exp".into())),
        ),
        (
            "exp as a float",
            Box::new(set("exp", json!(1_700_000_300.5))),
            is(Rejection::MissingClaim("exp".into())),
        ),
        (
            "exp as an integral float",
            Box::new(set("exp", json!(1_700_000_300.0))),
            is(Rejection::MissingClaim("exp".into())),
        ),
        (
            "exp above i64::MAX",
            Box::new(set("exp", json!(u64::MAX))),
            is(Rejection::MissingClaim("exp".into())),
        ),
        (
            "exp as a bool",
            Box::new(set("exp", json!(true))),
            is(Rejection::MissingClaim("exp".into())),
        ),
        (
            "iat as a string",
            Box::new(set("iat", json!(NOW.to_string()))),
            is(Rejection::MissingClaim("iat".into())),
        ),
        (
            "iss as a number",
            Box::new(set("iss", json!(1))),
            is(Rejection::MissingClaim("iss".into())),
        ),
        (
            "sub as an array",
            Box::new(set("sub", json!(["alice"]))),
            is(Rejection::MissingClaim("sub".into())),
        ),
        (
            "client_id as null",
            Box::new(set("client_id", json!(null))),
            is(Rejection::MissingClaim("client_id".into())),
        ),
        (
            "sid as a number",
            Box::new(set("sid", json!(1))),
            is(Rejection::MissingClaim("sid".into())),
        ),
        (
            "jti as an object",
            Box::new(set("jti", json!({}))),
            is(Rejection::MissingClaim("jti".into())),
        ),
        (
            "scope as an array",
            Box::new(set("scope", json!(["admin"]))),
            is(Rejection::MissingClaim("scope".into())),
        ),
    ];
    for (what, edit, expect) in cases {
        cat.case(what, &t(edit), expect);
    }
    for name in REQUIRED {
        cat.case(
            format!("claim `{name}` missing"),
            &sign(&FX.es, &claims_with(|c| drop(c.remove(name)))),
            is(Rejection::MissingClaim(name.into())),
        );
    }
    for name in ["iss", "sub", "jti", "client_id", "sid"] {
        cat.case(
            format!("claim `{name}` empty"),
            &sign(&FX.es, &claims_with(|c| drop(c.insert(name.into(), json!(""))))),
            is(Rejection::MissingClaim(name.into())),
        );
    }
    // Extra required claims from the authority's profile.
    let mut with_tenant = served(&["ES256"]);
    with_tenant.required_claims.push("tenant".into());
    let with_tenant = EffectiveProfile::new(&with_tenant, &LocalPolicy::default()).unwrap();
    let none = RevocationState::default();
    cat.case_in(
        "profile requires `tenant`, missing",
        &genuine(),
        &with_tenant,
        &none,
        is(Rejection::MissingClaim("tenant".into())),
    );
    cat.case_in(
        "profile requires `tenant`, present",
        &sign(&FX.es, &claims_with(set("tenant", json!("t1")))),
        &with_tenant,
        &none,
        Expect::Accept,
    );
    cat.finish("claims");
}

// ---------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------

fn revoked(events: &[(&str, &str, UnixTime)]) -> RevocationState {
    let mut state = RevocationState::default();
    for (seq, (kind, value, not_before)) in (1..).zip(events) {
        assert!(state.apply(&RevocationEvent {
            seq,
            kind: (*kind).to_owned(),
            value: (*value).to_owned(),
            not_before: *not_before,
            created_at: *not_before,
            expires_at: NOW + 3600,
        }));
    }
    state
}

#[test]
fn revocations_are_applied() {
    let mut cat = Catalogue::default();
    let token = genuine();
    let p = &FX.profile;
    let cases: Vec<(&str, RevocationState, Expect)> = vec![
        (
            "session revoked",
            revoked(&[("session", "sess-1", NOW)]),
            is(Rejection::Revoked(RevokedBy::Session)),
        ),
        (
            "another session revoked",
            revoked(&[("session", "sess-2", NOW)]),
            Expect::Accept,
        ),
        (
            "subject revoked at iat",
            revoked(&[("subject", "alice", NOW)]),
            is(Rejection::Revoked(RevokedBy::Subject)),
        ),
        (
            "subject revoked after iat",
            revoked(&[("subject", "alice", NOW + 10)]),
            is(Rejection::Revoked(RevokedBy::Subject)),
        ),
        (
            "subject revoked before iat",
            revoked(&[("subject", "alice", NOW - 1)]),
            Expect::Accept,
        ),
        (
            "client revoked at iat",
            revoked(&[("client", "app", NOW)]),
            is(Rejection::Revoked(RevokedBy::Client)),
        ),
        (
            "client revoked before iat",
            revoked(&[("client", "app", NOW - 1)]),
            Expect::Accept,
        ),
        (
            "another client revoked",
            revoked(&[("client", "other", NOW)]),
            Expect::Accept,
        ),
        (
            "signing key withdrawn",
            revoked(&[("key", FX.es.kid(), NOW)]),
            is(Rejection::KeyWithdrawn),
        ),
        (
            "another key withdrawn",
            revoked(&[("key", FX.ed.kid(), NOW)]),
            Expect::Accept,
        ),
        (
            "unknown revocation kind",
            revoked(&[("tenant", "alice", NOW)]),
            Expect::Accept,
        ),
        (
            "session, subject and client all revoked",
            revoked(&[
                ("client", "app", NOW),
                ("subject", "alice", NOW),
                ("session", "sess-1", NOW),
            ]),
            is(Rejection::Revoked(RevokedBy::Session)),
        ),
    ];
    for (what, state, expect) in cases {
        cat.case_in(what, &token, p, &state, expect);
    }
    // A withdrawn key stays withdrawn whatever the token says.
    let state = revoked(&[("key", FX.es.kid(), NOW)]);
    cat.case_in(
        "withdrawn key, alg mismatch in header",
        &sign_text(&FX.ed, &header("EdDSA", FX.es.kid()), &payload()),
        p,
        &state,
        is(Rejection::KeyWithdrawn),
    );
    cat.finish("revocation");
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

static GENUINE: LazyLock<[String; 4]> = LazyLock::new(|| {
    [&FX.es, &FX.ed, &FX.rs, &FX.ps].map(|k| {
        let t = sign(k, &claims());
        assert!(run(&t).is_ok(), "control: the genuine {} token is accepted", k.alg());
        t
    })
});

const B64URL: &str = "[A-Za-z0-9_-]";

fn regex(pattern: &str) -> prop::string::RegexGeneratorStrategy<String> {
    prop::string::string_regex(pattern).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_never_validate(s in any::<String>()) {
        prop_assert!(run(&s).is_err());
    }

    #[test]
    fn arbitrary_three_segment_strings_never_validate(
        s in regex(&format!("{B64URL}{{0,120}}\\.{B64URL}{{0,400}}\\.{B64URL}{{0,400}}"))
    ) {
        prop_assert!(run(&s).is_err());
    }

    #[test]
    fn genuine_header_with_arbitrary_rest_never_validates(
        which in 0usize..4,
        payload in regex(&format!("{B64URL}{{0,400}}")),
        sig in regex(&format!("{B64URL}{{0,400}}")),
    ) {
        let (h, _, _) = segments(&GENUINE[which]);
        let token = [h, payload.as_str(), sig.as_str()].join(".");
        prop_assert!(run(&token).is_err());
    }

    #[test]
    fn random_signatures_over_genuine_claims_never_validate(
        alg in prop::sample::select(vec!["none", "HS256", "ES256", "EdDSA", "RS256", "PS256", "es256"]),
        which in 0usize..5,
        sig in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let kid = [FX.es.kid(), FX.ed.kid(), FX.rs.kid(), FX.ps.kid(), "nope"][which];
        prop_assert!(run(&assemble(&header(alg, kid), &payload(), &sig)).is_err());
    }

    #[test]
    fn any_single_byte_change_of_a_genuine_token_is_refused(
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let token = &GENUINE[which];
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(&mutated != token);
        let got = run(&mutated);
        prop_assert!(got.is_err(), "byte {} of the {} token set to {:#04x} was accepted", i, which, byte);
    }

    #[test]
    fn base64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let e = b64::encode(&bytes);
        prop_assert!(!e.contains(['=', '+', '/']));
        prop_assert_eq!(b64::decode(&e), Some(bytes));
    }

    #[test]
    fn base64url_decodes_only_canonical_text(s in "[A-Za-z0-9_+/=-]{0,64}") {
        if let Some(bytes) = b64::decode(&s) {
            prop_assert_eq!(b64::encode(&bytes), s);
        }
    }

    #[test]
    fn base64url_decode_never_panics(s in any::<String>()) {
        if let Some(bytes) = b64::decode(&s) {
            prop_assert_eq!(b64::encode(&bytes), s);
        }
    }
}
