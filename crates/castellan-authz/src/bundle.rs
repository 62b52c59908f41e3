//! Policy bundles: the authority's signed, versioned policies for one
//! service, verified on receipt and compiled once.

use crate::error::AuthzError;
use crate::index::Index;
use crate::policies::{compile, PolicySummary};
use castellan_jose::{verify_compact, JoseError, VerifyOptions, VerifyingKey};
use cedar_policy::{PolicySet, Schema};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::sync::Arc;

/// The JOSE `typ` of a signed policy bundle.
pub const POLICY_BUNDLE_TYP: &str = "castellan-policy+jwt";

/// Largest signed bundle accepted, in bytes. The authority caps policies and
/// schema at 256 KiB each; JSON escaping and base64url stay well within this.
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;

/// One version of a service's policies, as the authority stores and ships it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyBundle {
    /// The service the policies govern.
    pub service: String,
    /// Its version: 1, 2, ... per service, never reused (a rollback stores
    /// the old text again as a new version).
    pub version: u64,
    /// Cedar policy text.
    pub policies: String,
    /// Cedar schema (human-readable `.cedarschema` format), when pushed with one.
    #[serde(default)]
    pub schema: Option<String>,
    /// When the version was stored (Unix seconds).
    pub created_at: i64,
}

/// A bundle parsed, named and validated: ready to decide with. Immutable;
/// the [`crate::Authorizer`] swaps whole `Arc<CompiledBundle>`s.
#[derive(Debug, Clone)]
pub struct CompiledBundle {
    bundle: PolicyBundle,
    set: PolicySet,
    schema: Option<Schema>,
    summary: PolicySummary,
    index: Option<Index>,
    signed: Option<Arc<str>>,
}

impl CompiledBundle {
    /// Parses the bundle's policies and, when it carries a schema, validates
    /// them against it in strict mode (as [`crate::check_policies`]).
    ///
    /// # Errors
    /// As [`crate::check_policies`].
    pub fn compile(bundle: PolicyBundle) -> Result<Self, AuthzError> {
        let checked = compile(&bundle.policies, bundle.schema.as_deref())?;
        Ok(Self {
            bundle,
            index: Index::build(&checked.set),
            set: checked.set,
            schema: checked.schema,
            summary: checked.summary,
            signed: None,
        })
    }

    /// The same bundle, remembering the signed JWS it arrived in.
    pub(crate) fn with_signed(mut self, jws: &str) -> Self {
        self.signed = Some(Arc::from(jws));
        self
    }

    /// The bundle as shipped.
    #[must_use]
    pub fn bundle(&self) -> &PolicyBundle {
        &self.bundle
    }

    /// Its version.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.bundle.version
    }

    /// What it holds.
    #[must_use]
    pub fn summary(&self) -> &PolicySummary {
        &self.summary
    }

    /// The compiled Cedar policy set (policies named by their `@id`).
    #[must_use]
    pub fn policy_set(&self) -> &PolicySet {
        &self.set
    }

    pub(crate) fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    /// The parsed schema, when the bundle carries one.
    #[must_use]
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// The signed JWS it was installed from, if it was installed signed.
    #[must_use]
    pub fn signed(&self) -> Option<&str> {
        self.signed.as_deref()
    }
}

/// The signed payload: the bundle plus `iss` and `iat`. Unknown members are
/// refused: a member that changed the meaning of a bundle must not be
/// silently ignored by an older receiver.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    iss: String,
    #[expect(
        dead_code,
        reason = "required in the payload; bundles do not expire, versions order them"
    )]
    iat: i64,
    service: String,
    version: u64,
    policies: String,
    #[serde(default)]
    schema: Option<String>,
    created_at: i64,
}

/// Verifies a bundle the authority signed with its token signing key (a
/// compact JWS, `typ` [`POLICY_BUNDLE_TYP`], payload the bundle plus `iss`
/// and `iat`) and returns the bundle.
///
/// `keys` maps the header's `kid` to one of the authority's published keys
/// (for example `Verifier::verifying_key`, or a map of parsed JWKS keys);
/// the key decides the algorithm, never the header. The checks are
/// castellan-jose's strict ones (size, canonical base64url, no duplicate
/// JSON members, no `jwk`/`jku`/`x5u`/`crit` headers, `typ`, signature),
/// then the payload's form, `iss` == `expected_issuer` and `service` ==
/// `expected_service`. Policies are not compiled here: see
/// [`CompiledBundle::compile`] and [`crate::Authorizer::install_signed`].
///
/// # Errors
/// [`AuthzError::BundleTooLarge`], [`AuthzError::UnknownKey`],
/// [`AuthzError::Signature`] (form, header, `typ`, signature),
/// [`AuthzError::Payload`], [`AuthzError::WrongIssuer`],
/// [`AuthzError::WrongService`].
pub fn verify_bundle<K: Borrow<VerifyingKey>>(
    jws: &str,
    expected_issuer: &str,
    expected_service: &str,
    keys: impl Fn(&str) -> Option<K>,
) -> Result<PolicyBundle, AuthzError> {
    let jws = jws.trim_end_matches(['\r', '\n']);
    if jws.len() > MAX_BUNDLE_BYTES {
        return Err(AuthzError::BundleTooLarge {
            len: jws.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    // `verify_compact` wants a borrowed key; `keys` may hand out owned ones
    // (an `Arc`), so the key lives in this slot for the call.
    let mut slot: Option<K> = None;
    let slot_ref = &mut slot;
    let verified = verify_compact(
        jws,
        VerifyOptions {
            expected_typ: Some(POLICY_BUNDLE_TYP),
            max_len: MAX_BUNDLE_BYTES,
        },
        move |kid| {
            *slot_ref = keys(kid);
            let key: &Option<K> = slot_ref;
            key.as_ref().map(Borrow::borrow)
        },
    )
    .map_err(|e| match e {
        JoseError::UnknownKid(kid) => AuthzError::UnknownKey { kid },
        other => AuthzError::Signature(other),
    })?;
    let p: Payload = serde_json::from_value(serde_json::Value::Object(verified.claims))
        .map_err(|e| AuthzError::Payload(e.to_string()))?;
    if p.iss != expected_issuer {
        return Err(AuthzError::WrongIssuer {
            expected: expected_issuer.to_owned(),
            got: p.iss,
        });
    }
    if p.service != expected_service {
        return Err(AuthzError::WrongService {
            expected: expected_service.to_owned(),
            got: p.service,
        });
    }
    if p.version == 0 {
        return Err(AuthzError::Payload("`version` must be at least 1".to_owned()));
    }
    Ok(PolicyBundle {
        service: p.service,
        version: p.version,
        policies: p.policies,
        schema: p.schema,
        created_at: p.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_jose::{b64, Algorithm, SigningKey};
    use serde_json::{json, Value};
    use std::collections::HashMap;

    const ISS: &str = "https://auth.test";

    struct Fixture {
        sk: SigningKey,
        keys: HashMap<String, VerifyingKey>,
    }

    impl Fixture {
        fn new(alg: Algorithm) -> Self {
            let (sk, _) = SigningKey::generate(alg).unwrap();
            let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
            let keys = HashMap::from([(vk.kid().to_owned(), vk)]);
            Self { sk, keys }
        }
        fn find<'a>(&'a self) -> impl Fn(&str) -> Option<&'a VerifyingKey> + 'a {
            |kid| self.keys.get(kid)
        }
        fn sign(&self, typ: &str, payload: &Value) -> String {
            self.sk.sign_compact(typ, payload).unwrap()
        }
    }

    fn payload() -> Value {
        json!({
            "iss": ISS, "iat": 1_700_000_000, "service": "orders", "version": 3,
            "policies": "permit(principal, action, resource);", "schema": null, "created_at": 1_699_999_000,
        })
    }

    fn with(mut p: Value, key: &str, v: Value) -> Value {
        p[key] = v;
        p
    }

    fn without(mut p: Value, key: &str) -> Value {
        p.as_object_mut().unwrap().remove(key);
        p
    }

    #[test]
    fn accepts_a_genuine_bundle_with_every_algorithm() {
        for alg in Algorithm::ALL {
            let f = Fixture::new(alg);
            let b = verify_bundle(&f.sign(POLICY_BUNDLE_TYP, &payload()), ISS, "orders", f.find()).unwrap();
            assert_eq!(b.version, 3, "{alg}");
            assert_eq!(b.service, "orders");
            assert_eq!(b.schema, None);
            assert_eq!(b.created_at, 1_699_999_000);
        }
    }

    #[test]
    fn accepts_owned_and_shared_keys() {
        let f = Fixture::new(Algorithm::EdDSA);
        let jws = f.sign(POLICY_BUNDLE_TYP, &payload());
        let shared: HashMap<String, Arc<VerifyingKey>> = f
            .keys
            .keys()
            .map(|k| (k.clone(), Arc::new(VerifyingKey::from_jwk(f.sk.public_jwk()).unwrap())))
            .collect();
        verify_bundle(&jws, ISS, "orders", |kid| shared.get(kid).cloned()).unwrap();
        // A trailing newline (as a file or HTTP body may have) is fine.
        verify_bundle(&format!("{jws}\n"), ISS, "orders", f.find()).unwrap();
    }

    #[test]
    fn refuses_wrong_typ() {
        let f = Fixture::new(Algorithm::ES256);
        for typ in ["at+jwt", "JWT", "castellan-policy"] {
            let err = verify_bundle(&f.sign(typ, &payload()), ISS, "orders", f.find()).unwrap_err();
            assert!(
                matches!(err, AuthzError::Signature(JoseError::WrongType { .. })),
                "{typ}: {err:?}"
            );
        }
    }

    #[test]
    fn refuses_wrong_issuer_and_service() {
        let f = Fixture::new(Algorithm::ES256);
        let jws = f.sign(POLICY_BUNDLE_TYP, &payload());
        assert!(matches!(
            verify_bundle(&jws, "https://other.test", "orders", f.find()),
            Err(AuthzError::WrongIssuer { got, .. }) if got == ISS
        ));
        assert!(matches!(
            verify_bundle(&jws, ISS, "billing", f.find()),
            Err(AuthzError::WrongService { got, .. }) if got == "orders"
        ));
    }

    #[test]
    fn refuses_unknown_kid_and_foreign_key() {
        let f = Fixture::new(Algorithm::ES256);
        let other = Fixture::new(Algorithm::ES256);
        let jws = other.sign(POLICY_BUNDLE_TYP, &payload());
        assert!(matches!(
            verify_bundle(&jws, ISS, "orders", f.find()),
            Err(AuthzError::UnknownKey { kid }) if kid == other.sk.kid()
        ));
        // A key that claims the signer's kid but is not its key.
        let liar = |_: &str| f.keys.values().next();
        assert!(matches!(
            verify_bundle(&jws, ISS, "orders", liar),
            Err(AuthzError::Signature(JoseError::BadSignature))
        ));
    }

    #[test]
    fn refuses_a_bad_signature_and_altered_payload() {
        let f = Fixture::new(Algorithm::ES256);
        let jws = f.sign(POLICY_BUNDLE_TYP, &payload());
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let mut sig = b64::decode(sig).unwrap();
        sig[5] ^= 1;
        let flipped = format!("{input}.{}", b64::encode(&sig));
        assert!(matches!(
            verify_bundle(&flipped, ISS, "orders", f.find()),
            Err(AuthzError::Signature(JoseError::BadSignature))
        ));
        // Same header and signature, a more permissive payload.
        let parts: Vec<&str> = jws.split('.').collect();
        let evil = with(payload(), "policies", json!("permit(principal, action, resource);//"));
        let forged = format!("{}.{}.{}", parts[0], b64::encode(evil.to_string().as_bytes()), parts[2]);
        assert!(matches!(
            verify_bundle(&forged, ISS, "orders", f.find()),
            Err(AuthzError::Signature(JoseError::BadSignature))
        ));
        // alg none, an embedded key, structure.
        let kid = f.sk.kid();
        for header in [
            json!({"alg": "none", "kid": kid, "typ": POLICY_BUNDLE_TYP}),
            json!({"alg": "ES256", "kid": kid, "typ": POLICY_BUNDLE_TYP, "jwk": f.sk.public_jwk()}),
            json!({"alg": "HS256", "kid": kid, "typ": POLICY_BUNDLE_TYP}),
        ] {
            let t = format!(
                "{}.{}.{}",
                b64::encode(header.to_string().as_bytes()),
                parts[1],
                parts[2]
            );
            assert!(
                matches!(
                    verify_bundle(&t, ISS, "orders", f.find()),
                    Err(AuthzError::Signature(_))
                ),
                "{header}"
            );
        }
        for junk in ["", "a.b", "not a jws", &format!("{jws}.x")] {
            assert!(matches!(
                verify_bundle(junk, ISS, "orders", f.find()),
                Err(AuthzError::Signature(_))
            ));
        }
    }

    #[test]
    fn refuses_malformed_payloads_even_when_signed() {
        let f = Fixture::new(Algorithm::EdDSA);
        let cases = [
            ("no version", without(payload(), "version")),
            ("no policies", without(payload(), "policies")),
            ("no iss", without(payload(), "iss")),
            ("no iat", without(payload(), "iat")),
            ("no created_at", without(payload(), "created_at")),
            ("negative version", with(payload(), "version", json!(-1))),
            ("zero version", with(payload(), "version", json!(0))),
            ("string version", with(payload(), "version", json!("3"))),
            ("policies not a string", with(payload(), "policies", json!(["permit"]))),
            ("unknown member", with(payload(), "mode", json!("permissive"))),
        ];
        for (what, p) in cases {
            let err = verify_bundle(&f.sign(POLICY_BUNDLE_TYP, &p), ISS, "orders", f.find()).unwrap_err();
            assert!(matches!(err, AuthzError::Payload(_)), "{what}: {err:?}");
        }
    }

    #[test]
    fn refuses_oversized_bundles_before_decoding() {
        let f = Fixture::new(Algorithm::ES256);
        let big = "a".repeat(MAX_BUNDLE_BYTES + 1);
        assert!(matches!(
            verify_bundle(&big, ISS, "orders", f.find()),
            Err(AuthzError::BundleTooLarge { .. })
        ));
    }

    #[test]
    fn compile_keeps_the_bundle_and_names() {
        let b = PolicyBundle {
            service: "orders".into(),
            version: 2,
            policies: "@id(\"all\") permit(principal, action, resource);".into(),
            schema: None,
            created_at: 0,
        };
        let c = CompiledBundle::compile(b.clone()).unwrap();
        assert_eq!(c.bundle(), &b);
        assert_eq!(c.version(), 2);
        assert_eq!(c.summary().ids, ["all"]);
        assert!(c.signed().is_none());
        assert!(c.schema().is_none());
        assert_eq!(c.policy_set().policies().count(), 1);
    }
}
