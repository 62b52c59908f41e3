//! People: accounts, passwords, suspension. Suspension and deletion revoke
//! every token of the person through the revocation stream (a subject
//! revocation), end their stored sessions so no refresh token works, and
//! refuse new sign-ins until resumed.

use crate::http::error::ApiError;
use crate::secrets::random_id;
use crate::Authority;
use castellan_store::{RevocationKind, StoreError, UserRecord};

/// Usernames: 1 to 64 characters of lowercase letters, digits and `. _ - @ +`;
/// input is lowercased first, so `Alice` and `alice` are one account.
pub fn normalize_username(name: &str) -> Option<String> {
    let n = name.trim().to_lowercase();
    let ok = (1..=64).contains(&n.chars().count())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@' | '+'))
        // `.` and `..` cannot be a URL path segment, so the admin API could not name them.
        && !n.chars().all(|c| c == '.');
    ok.then_some(n)
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::server_error(&e)
}

/// What ending a person's sessions did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionsEnded {
    /// Sessions ended.
    pub ended_sessions: usize,
    /// Sequence number of the revocation event verifiers receive, if one was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_seq: Option<i64>,
}

impl Authority {
    /// Creates a person; `password` may be absent for federated-only people,
    /// `federated` links them to (upstream issuer, upstream subject).
    pub async fn create_user(
        &self,
        username: &str,
        password: Option<&str>,
        federated: Option<(String, String)>,
    ) -> Result<UserRecord, ApiError> {
        let username = normalize_username(username)
            .ok_or_else(|| ApiError::invalid_request("username must be 1 to 64 of a-z 0-9 . _ - @ +"))?;
        let password_hash = match password {
            Some(p) => Some(
                self.passwords()
                    .hash(p)
                    .await
                    .map_err(|e| ApiError::invalid_request(e.to_string()))?,
            ),
            None => None,
        };
        let user = UserRecord {
            user_id: random_id("u-").map_err(|e| ApiError::server_error(&e))?,
            username,
            password_hash,
            suspended: false,
            created_at: self.now(),
            federated_issuer: federated.as_ref().map(|f| f.0.clone()),
            federated_subject: federated.map(|f| f.1),
        };
        match self.store().insert_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict { .. }) => Err(ApiError::conflict(format!(
                "user `{}` exists, or that upstream identity is linked already",
                user.username
            ))),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Finds a person by username (case-insensitive) or user id.
    pub async fn find_user(&self, name_or_id: &str) -> Result<Option<UserRecord>, ApiError> {
        if let Some(name) = normalize_username(name_or_id) {
            if let Some(u) = self.store().get_user_by_name(&name).await.map_err(store_err)? {
                return Ok(Some(u));
            }
        }
        if name_or_id.len() > 128 {
            return Ok(None);
        }
        self.store().get_user(name_or_id).await.map_err(store_err)
    }

    /// Ends every session of a person (all, or all but `keep`) and revokes
    /// their live tokens through the stream.
    async fn end_all_sessions(&self, user: &UserRecord, keep: Option<&str>) -> Result<SessionsEnded, ApiError> {
        let now = self.now();
        let ended = self
            .store()
            .end_user_sessions(&user.user_id, keep, now)
            .await
            .map_err(store_err)?;
        let seq = if keep.is_none() {
            // One event covers every token of the person, including any
            // minted by a sign-in racing with this call.
            let ev = self
                .record_revocation(RevocationKind::Subject, &user.user_id, now)
                .await
                .map_err(store_err)?;
            Some(ev.seq)
        } else {
            let mut last = None;
            for sid in &ended {
                let ev = self
                    .record_revocation(RevocationKind::Session, sid, now)
                    .await
                    .map_err(store_err)?;
                last = Some(ev.seq);
            }
            last
        };
        Ok(SessionsEnded {
            ended_sessions: ended.len(),
            revocation_seq: seq,
        })
    }

    /// Sets a new password; with `end_sessions`, every session ends and the
    /// person's live tokens are revoked.
    pub async fn set_user_password(
        &self,
        user: &UserRecord,
        password: &str,
        end_sessions: bool,
    ) -> Result<SessionsEnded, ApiError> {
        let hash = self
            .passwords()
            .hash(password)
            .await
            .map_err(|e| ApiError::invalid_request(e.to_string()))?;
        if !self
            .store()
            .set_user_password(&user.user_id, &hash)
            .await
            .map_err(store_err)?
        {
            return Err(ApiError::not_found("user vanished"));
        }
        self.throttle().success(&user.username);
        if end_sessions {
            self.end_all_sessions(user, None).await
        } else {
            Ok(SessionsEnded {
                ended_sessions: 0,
                revocation_seq: None,
            })
        }
    }

    /// Suspends a person: no sign-in, no refresh, every live token revoked.
    pub async fn suspend_user(&self, user: &UserRecord) -> Result<SessionsEnded, ApiError> {
        if !self
            .store()
            .set_user_suspended(&user.user_id, true)
            .await
            .map_err(store_err)?
        {
            return Err(ApiError::not_found("user vanished"));
        }
        let ended = self.end_all_sessions(user, None).await?;
        metrics::counter!("castellan_user_suspensions_total").increment(1);
        Ok(ended)
    }

    /// Lets a suspended person sign in again. Their old sessions stay ended.
    pub async fn resume_user(&self, user: &UserRecord) -> Result<(), ApiError> {
        if !self
            .store()
            .set_user_suspended(&user.user_id, false)
            .await
            .map_err(store_err)?
        {
            return Err(ApiError::not_found("user vanished"));
        }
        Ok(())
    }

    /// Deletes a person after revoking everything they hold.
    pub async fn delete_user(&self, user: &UserRecord) -> Result<SessionsEnded, ApiError> {
        let ended = self.end_all_sessions(user, None).await?;
        self.store().delete_user(&user.user_id).await.map_err(store_err)?;
        Ok(ended)
    }

    /// Ends one session and revokes its tokens; the revocation event's
    /// sequence number, or `None` when no live session was ended (it had
    /// ended already, and its tokens were revoked then, or never existed):
    /// asking again appends nothing to the revocation log.
    pub async fn end_session(&self, sid: &str) -> Result<Option<i64>, ApiError> {
        let now = self.now();
        if !self.store().end_session(sid, now).await.map_err(store_err)? {
            return Ok(None);
        }
        let ev = self
            .record_revocation(RevocationKind::Session, sid, now)
            .await
            .map_err(store_err)?;
        Ok(Some(ev.seq))
    }

    /// Ends a session if it is live and revokes the `sid` whether or not a
    /// stored session had it (a client-credentials token's `sid` has none).
    pub async fn revoke_sid(&self, sid: &str) -> Result<i64, ApiError> {
        let now = self.now();
        self.store().end_session(sid, now).await.map_err(store_err)?;
        let ev = self
            .record_revocation(RevocationKind::Session, sid, now)
            .await
            .map_err(store_err)?;
        Ok(ev.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_username;

    #[test]
    fn usernames_are_lowercased_and_restricted() {
        assert_eq!(
            normalize_username(" Alice@Example.com ").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(normalize_username(""), None);
        assert_eq!(normalize_username(".."), None);
        assert_eq!(normalize_username("a.b").as_deref(), Some("a.b"));
        assert_eq!(normalize_username("a b"), None);
        assert_eq!(normalize_username("ålice"), None);
        assert_eq!(normalize_username(&"a".repeat(65)), None);
    }
}
