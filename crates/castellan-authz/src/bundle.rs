//! Policy bundles: checking, compiling, and verifying the authority's signature.

use crate::error::AuthzError;
use base64::Engine as _;
use castellan_jose::{verify_compact, VerifyOptions, VerifyingKey};
use cedar_policy::{Effect, PolicySet, Schema, ValidationMode, Validator};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::str::FromStr;

/// The JOSE `typ` of a signed policy bundle.
pub const POLICY_BUNDLE_TYP: &str = "castellan-policy+jwt";

/// Largest signed bundle accepted, bytes.
const MAX_BUNDLE_BYTES: usize = 1 << 20;

/// One version of a service's policies, as the authority ships it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyBundle {
    /// The service.
    pub service: String,
    /// Its version (1, 2, ...).
    pub version: i64,
    /// Cedar policy text.
    pub policies: String,
    /// Cedar schema (human-readable format), when pushed with one.
    #[serde(default)]
    pub schema: Option<String>,
    /// When the version was stored.
    pub created_at: i64,
}

/// What a policy set holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// Policy ids (`@id` annotations where given), in order.
    pub ids: Vec<String>,
    /// `permit` policies.
    pub permits: usize,
    /// `forbid` policies.
    pub forbids: usize,
}

fn parse(policies: &str, schema: Option<&str>) -> Result<(PolicySet, Option<Schema>), AuthzError> {
    let set = PolicySet::from_str(policies).map_err(|e| AuthzError::Parse(diagnostics(&e)))?;
    let Some(schema) = schema else {
        return Ok((set, None));
    };
    let (schema, _warnings) = Schema::from_cedarschema_str(schema).map_err(|e| AuthzError::Schema(diagnostics(&e)))?;
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        let errors: Vec<String> = result.validation_errors().map(|e| format!("{e}")).collect();
        return Err(AuthzError::Validation(errors.join("; ")));
    }
    Ok((set, Some(schema)))
}

/// An error with its causes (Cedar puts the useful part in the chain).
fn diagnostics(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn summary(set: &PolicySet) -> PolicySummary {
    let mut s = PolicySummary {
        ids: Vec::new(),
        permits: 0,
        forbids: 0,
    };
    for p in set.policies() {
        s.ids
            .push(p.annotation("id").map_or_else(|| p.id().to_string(), str::to_owned));
        match p.effect() {
            Effect::Permit => s.permits += 1,
            Effect::Forbid => s.forbids += 1,
        }
    }
    s
}

/// Parses the policies and, with a schema, validates them against it
/// (strict mode): what the authority runs before it stores a push.
///
/// # Errors
/// [`AuthzError::Parse`], [`AuthzError::Schema`] or
/// [`AuthzError::Validation`] with Cedar's diagnostics.
pub fn check_policies(policies: &str, schema: Option<&str>) -> Result<PolicySummary, AuthzError> {
    parse(policies, schema).map(|(set, _)| summary(&set))
}

/// A bundle ready to decide with.
#[derive(Debug)]
pub struct CompiledBundle {
    /// The bundle as shipped.
    pub bundle: PolicyBundle,
    pub(crate) set: PolicySet,
    pub(crate) summary: PolicySummary,
}

impl CompiledBundle {
    /// Parses and validates `bundle`.
    ///
    /// # Errors
    /// As [`check_policies`].
    pub fn compile(bundle: PolicyBundle) -> Result<Self, AuthzError> {
        let (set, _schema) = parse(&bundle.policies, bundle.schema.as_deref())?;
        let summary = summary(&set);
        Ok(Self { bundle, set, summary })
    }

    /// What it holds.
    #[must_use]
    pub fn summary(&self) -> &PolicySummary {
        &self.summary
    }
}

/// The signed payload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    iss: String,
    #[allow(dead_code)]
    iat: i64,
    service: String,
    version: i64,
    policies: String,
    #[serde(default)]
    schema: Option<String>,
    created_at: i64,
}

fn header_kid(jws: &str) -> Result<String, AuthzError> {
    let bad = |m: &str| AuthzError::Bundle(m.to_owned());
    let header = jws.split('.').next().ok_or_else(|| bad("not a compact jws"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| bad("header is not base64url"))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad("header is not json"))?;
    v.get("kid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad("header has no kid"))
}

/// Verifies a bundle signed by the authority: the key is found by `kid`
/// among the authority's published keys (`find_key`), the algorithm comes
/// from the key, `typ` must be [`POLICY_BUNDLE_TYP`], `iss` the authority
/// and `service` the expected one.
///
/// # Errors
/// [`AuthzError::Bundle`] for any of those failures.
pub fn verify_bundle<K: Borrow<VerifyingKey>>(
    jws: &str,
    expected_issuer: &str,
    expected_service: &str,
    find_key: impl Fn(&str) -> Option<K>,
) -> Result<PolicyBundle, AuthzError> {
    if jws.len() > MAX_BUNDLE_BYTES {
        return Err(AuthzError::Bundle(format!("larger than {MAX_BUNDLE_BYTES} bytes")));
    }
    let kid = header_kid(jws)?;
    let key = find_key(&kid).ok_or_else(|| AuthzError::Bundle(format!("unknown signing key `{kid}`")))?;
    let verified = verify_compact(
        jws,
        VerifyOptions {
            expected_typ: Some(POLICY_BUNDLE_TYP),
            max_len: MAX_BUNDLE_BYTES,
        },
        |k| (k == kid).then(|| key.borrow()),
    )
    .map_err(|e| AuthzError::Bundle(e.to_string()))?;
    let p: Payload = serde_json::from_value(serde_json::Value::Object(verified.claims))
        .map_err(|e| AuthzError::Bundle(format!("payload: {e}")))?;
    if p.iss != expected_issuer {
        return Err(AuthzError::Bundle(format!(
            "issued by `{}`, not `{expected_issuer}`",
            p.iss
        )));
    }
    if p.service != expected_service {
        return Err(AuthzError::WrongService {
            expected: expected_service.to_owned(),
            got: p.service,
        });
    }
    if p.version < 1 {
        return Err(AuthzError::Bundle("version must be at least 1".to_owned()));
    }
    Ok(PolicyBundle {
        service: p.service,
        version: p.version,
        policies: p.policies,
        schema: p.schema,
        created_at: p.created_at,
    })
}
