//! The validation code path: one pure function, every check in one place.

use crate::binding;
use crate::token::VerifiedClaims;
use crate::{EffectiveProfile, PresentedCertificate, Rejection, RevocationState, VerifiedToken};
use castellan_core::UnixTime;
use castellan_jose::{verify_compact, VerifyOptions, VerifyingKey, MAX_TOKEN_BYTES};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Parsed public keys by kid.
pub type KeyRing = HashMap<String, Arc<VerifyingKey>>;

/// Everything a validation needs besides the token.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    /// Keys by kid.
    pub keys: &'a KeyRing,
    /// Settings.
    pub profile: &'a EffectiveProfile,
    /// Expected issuer.
    pub issuer: &'a str,
    /// This service.
    pub audience: &'a str,
    /// Revocations.
    pub revocations: &'a RevocationState,
    /// Now, from the injected clock.
    pub now: UnixTime,
}

/// Takes a non-empty string claim out of the map (no copy).
fn string(claims: &mut Map<String, Value>, name: &str) -> Result<String, Rejection> {
    match claims.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(Rejection::MissingClaim(name.to_owned())),
    }
}

fn integer(claims: &Map<String, Value>, name: &str) -> Result<i64, Rejection> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| Rejection::MissingClaim(name.to_owned()))
}

/// Links in an RFC 8693 `act` chain: each an object with a non-empty
/// string `sub`, optionally nesting the previous actor. Deeper than the
/// hard ceiling counts as too deep without walking further.
fn delegation_depth(act: &Value) -> Result<usize, Rejection> {
    let malformed = || Rejection::MissingClaim("act".to_owned());
    let mut depth = 0;
    let mut at = act;
    loop {
        let obj = at.as_object().ok_or_else(malformed)?;
        match obj.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(malformed()),
        }
        depth += 1;
        if depth > crate::profile::MAX_DELEGATION_DEPTH {
            return Ok(depth);
        }
        match obj.get("act") {
            None => return Ok(depth),
            Some(next) => at = next,
        }
    }
}

/// Validates an access token that arrived with no client certificate:
/// [`validate_presented`] with none, so a certificate-bound token is refused.
pub fn validate(token: &str, cx: &ValidationContext<'_>) -> Result<VerifiedToken, Rejection> {
    validate_presented(token, cx, None)
}

/// Validates an access token: structure and size, the signature with the key
/// found by `kid` (its algorithm, never the header's), `typ`, issuer,
/// audience, expiry, not-before, issued-at, lifetime, required claims,
/// revocation, and a certificate binding (`cnf`, RFC 8705) against the
/// certificate `presented` on the connection.
pub fn validate_presented(
    token: &str,
    cx: &ValidationContext<'_>,
    presented: Option<&PresentedCertificate>,
) -> Result<VerifiedToken, Rejection> {
    let verified = validate_unbound(token, cx)?;
    binding::check(verified.cnf_x5t_s256.as_deref(), presented)?;
    Ok(verified)
}

/// Every check but the certificate binding, which the caller makes (the
/// verifier does, on cache hits too). A `cnf` it cannot check is refused here.
pub(crate) fn validate_unbound(token: &str, cx: &ValidationContext<'_>) -> Result<VerifiedToken, Rejection> {
    let p = cx.profile;
    let mut withdrawn = false;
    let mut disallowed = false;
    let verified = verify_compact(
        token,
        VerifyOptions {
            expected_typ: Some(&p.token_type),
            max_len: MAX_TOKEN_BYTES,
        },
        |kid| {
            if cx.revocations.key_withdrawn(kid) {
                withdrawn = true;
                return None;
            }
            let key = cx.keys.get(kid)?;
            if !p.algorithms.contains(&key.alg()) {
                disallowed = true;
                return None;
            }
            Some(key.as_ref())
        },
    );
    let verified = match verified {
        Ok(v) => v,
        Err(_) if withdrawn => return Err(Rejection::KeyWithdrawn),
        Err(_) if disallowed => return Err(Rejection::AlgorithmNotAllowed),
        Err(e) => return Err(e.into()),
    };
    let mut claims = verified.claims;
    // Extra required claims are checked before the known ones are taken out of the map.
    for extra in &p.extra_required_claims {
        if !claims.contains_key(extra) {
            return Err(Rejection::MissingClaim(extra.clone()));
        }
    }
    let iss = string(&mut claims, "iss")?;
    let sub = string(&mut claims, "sub")?;
    let client_id = string(&mut claims, "client_id")?;
    let sid = string(&mut claims, "sid")?;
    let jti = string(&mut claims, "jti")?;
    let c = &claims;
    let exp = integer(c, "exp")?;
    let iat = integer(c, "iat")?;
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == cx.audience,
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            list.iter().any(|a| a.as_str() == Some(cx.audience))
        }
        _ => return Err(Rejection::MissingClaim("aud".to_owned())),
    };
    let scope = match c.get("scope") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Rejection::MissingClaim("scope".to_owned())),
    };
    if iss != cx.issuer {
        return Err(Rejection::WrongIssuer);
    }
    if !aud_ok {
        return Err(Rejection::WrongAudience);
    }
    let now = cx.now;
    if now.saturating_sub(p.leeway) >= exp {
        return Err(Rejection::Expired);
    }
    if let Some(nbf) = c.get("nbf") {
        let nbf = nbf.as_i64().ok_or_else(|| Rejection::MissingClaim("nbf".to_owned()))?;
        if nbf > now.saturating_add(p.leeway) {
            return Err(Rejection::NotYetValid);
        }
    }
    if iat > now.saturating_add(p.leeway) {
        return Err(Rejection::IssuedInFuture);
    }
    if exp.saturating_sub(iat) > p.max_lifetime {
        return Err(Rejection::LifetimeTooLong);
    }
    let act = claims.remove("act");
    match &act {
        None if p.require_delegation => return Err(Rejection::DelegationRequired),
        None => {}
        Some(a) if delegation_depth(a)? > p.max_delegation_depth => return Err(Rejection::DelegationTooDeep),
        Some(_) => {}
    }
    let cnf_x5t_s256 = claims.get("cnf").map(binding::confirmation).transpose()?;
    if let Some(by) = cx.revocations.check(&sid, &sub, &client_id, iat) {
        return Err(Rejection::Revoked(by));
    }
    Ok(VerifiedToken::new(VerifiedClaims {
        iss,
        sub,
        aud: cx.audience.to_owned(),
        client_id,
        sid,
        jti,
        scope,
        iat,
        exp,
        kid: verified.kid,
        act,
        cnf_x5t_s256,
    }))
}
