//! The authorizer of one service: the bundle in force, swapped atomically,
//! kept on disk as the last good one, and decisions against it.

use crate::bundle::{verify_bundle, CompiledBundle, PolicyBundle, MAX_BUNDLE_BYTES};
use crate::decision::{evaluate, Decision};
use crate::decision_log::DecisionLog;
use crate::error::AuthzError;
use crate::request::AuthzRequest;
use arc_swap::ArcSwapOption;
use castellan_jose::VerifyingKey;
use cedar_policy::Entities;
use std::borrow::Borrow;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The bundle is now in force for every later decision.
    Swapped {
        /// The version it replaced, if any.
        previous: Option<u64>,
        /// The version now in force.
        version: u64,
    },
    /// The bundle offered is the one already in force (a re-fetch); nothing
    /// changed except, for a signed install, the signature kept for
    /// [`Authorizer::save_last_good`], which is the fresher one.
    Unchanged {
        /// The version in force.
        version: u64,
    },
}

impl Installed {
    /// The version in force after the install.
    #[must_use]
    pub fn version(self) -> u64 {
        match self {
            Self::Swapped { version, .. } | Self::Unchanged { version } => version,
        }
    }
}

/// Decides for one service with the bundle in force.
///
/// Decisions read the bundle through [`ArcSwapOption`]: lock-free, and a
/// decision under way finishes with the bundle it started with while an
/// install swaps in the next. Installs are serialised among themselves.
#[derive(Debug)]
pub struct Authorizer {
    service: String,
    current: ArcSwapOption<CompiledBundle>,
    installing: Mutex<()>,
    log: Option<Arc<DecisionLog>>,
}

impl Authorizer {
    /// An authorizer for `service`, with no bundle yet: it denies everything
    /// ([`crate::DenyReason::NoBundle`]) until one is installed.
    #[must_use]
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            current: ArcSwapOption::empty(),
            installing: Mutex::new(()),
            log: None,
        }
    }

    /// Records every decision of [`Authorizer::decide`] in `log` (ship it
    /// to the authority with a [`crate::DecisionShipper`]).
    #[must_use]
    pub fn with_decision_log(mut self, log: Arc<DecisionLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// The decision log, if one is attached.
    #[must_use]
    pub fn decision_log(&self) -> Option<&Arc<DecisionLog>> {
        self.log.as_ref()
    }

    /// The service.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The version in force, if any.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        self.current.load().as_ref().map(|b| b.version())
    }

    /// The bundle in force. Holding the `Arc` keeps that bundle usable
    /// ([`CompiledBundle::decide`]) after a newer one is installed.
    #[must_use]
    pub fn current(&self) -> Option<Arc<CompiledBundle>> {
        self.current.load_full()
    }

    /// Compiles `bundle` and puts it in force for every later decision.
    ///
    /// Refused, leaving the bundle in force untouched:
    /// - a bundle for another service ([`AuthzError::WrongService`]);
    /// - a version older than the one in force, or the same version with
    ///   other content ([`AuthzError::Stale`]): versions only grow at the
    ///   authority (a rollback is stored as a new version), so an older one
    ///   is a replay and a second text under one version a fault; taking
    ///   either would let whoever can replay a once-valid bundle roll
    ///   policies back;
    /// - a bundle that does not compile (Cedar's diagnostics).
    ///
    /// Offering exactly the bundle in force again (what a poll does) is
    /// answered [`Installed::Unchanged`]. A new `Authorizer` (a restart)
    /// accepts any version.
    ///
    /// # Errors
    /// [`AuthzError::WrongService`], [`AuthzError::Stale`], or as
    /// [`crate::check_policies`].
    pub fn install(&self, bundle: PolicyBundle) -> Result<Installed, AuthzError> {
        self.install_inner(bundle, None)
    }

    /// Verifies a signed bundle ([`verify_bundle`] with this authorizer's
    /// service) and installs it as [`Authorizer::install`] does, keeping the
    /// JWS so [`Authorizer::save_last_good`] can write it.
    ///
    /// # Errors
    /// As [`verify_bundle`] and [`Authorizer::install`].
    pub fn install_signed<K: Borrow<VerifyingKey>>(
        &self,
        jws: &str,
        expected_issuer: &str,
        keys: impl Fn(&str) -> Option<K>,
    ) -> Result<Installed, AuthzError> {
        let jws = jws.trim_end_matches(['\r', '\n']);
        let bundle = verify_bundle(jws, expected_issuer, &self.service, keys)?;
        self.install_inner(bundle, Some(jws))
    }

    fn install_inner(&self, bundle: PolicyBundle, signed: Option<&str>) -> Result<Installed, AuthzError> {
        if bundle.service != self.service {
            return Err(AuthzError::WrongService {
                expected: self.service.clone(),
                got: bundle.service,
            });
        }
        // One install at a time, so the checks below hold until the store.
        let _serial = self.installing.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current.load_full();
        if let Some(cur) = &current {
            if &bundle == cur.bundle() {
                if let Some(jws) = signed.filter(|jws| cur.signed() != Some(*jws)) {
                    let refreshed = CompiledBundle::clone(cur).with_signed(jws);
                    self.current.store(Some(Arc::new(refreshed)));
                }
                return Ok(Installed::Unchanged { version: cur.version() });
            }
            if bundle.version <= cur.version() {
                return Err(AuthzError::Stale {
                    current: cur.version(),
                    offered: bundle.version,
                });
            }
        }
        let mut compiled = CompiledBundle::compile(bundle)?;
        if let Some(jws) = signed {
            compiled = compiled.with_signed(jws);
        }
        let version = compiled.version();
        self.current.store(Some(Arc::new(compiled)));
        Ok(Installed::Swapped {
            previous: current.map(|c| c.version()),
            version,
        })
    }

    /// Decides `request` against `entities` (the principal, the resource
    /// and whatever else of the service's own data the policies read) with
    /// the bundle in force. Default deny; a matching `forbid` overrides any
    /// `permit`; with no bundle, [`crate::DenyReason::NoBundle`].
    ///
    /// With a decision log attached, the decision is recorded there.
    pub fn decide(&self, request: &AuthzRequest, entities: &Entities) -> Decision {
        let decision = match self.current.load().as_ref() {
            Some(bundle) => evaluate(bundle, request, entities),
            None => Decision::no_bundle(),
        };
        if let Some(log) = &self.log {
            log.record(request, &decision);
        }
        decision
    }

    /// Writes the signed bundle in force to `path` as the last good one:
    /// the compact JWS exactly as the authority signed it, and a newline.
    /// The write goes to `path` + `.tmp`, is synced, then renamed over
    /// `path`, so a crash leaves the old file or the new one, never half.
    ///
    /// The JWS, not the bundle JSON, so that [`Authorizer::load_last_good`]
    /// verifies it again: a file edited on disk is refused like any forgery.
    ///
    /// # Errors
    /// [`AuthzError::NothingToSave`] when no bundle is in force or it was
    /// installed unsigned; [`AuthzError::Io`].
    pub fn save_last_good(&self, path: &Path) -> Result<(), AuthzError> {
        let current = self.current.load_full();
        let jws = current
            .as_deref()
            .and_then(CompiledBundle::signed)
            .ok_or(AuthzError::NothingToSave)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = Path::new(&tmp);
        let io = |e: std::io::Error| AuthzError::Io {
            op: "write",
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = std::fs::File::create(tmp).map_err(io)?;
        file.write_all(jws.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(tmp, path).map_err(io)
    }

    /// Reads the last good bundle saved at `path`, verifies it again as
    /// [`Authorizer::install_signed`] does (so its signing key must still be
    /// among `keys`), and installs it. Meant for start-up, before the first
    /// fetch; like any install it never replaces a newer bundle.
    ///
    /// # Errors
    /// [`AuthzError::Io`] (a missing file included), or as
    /// [`Authorizer::install_signed`].
    pub fn load_last_good<K: Borrow<VerifyingKey>>(
        &self,
        path: &Path,
        expected_issuer: &str,
        keys: impl Fn(&str) -> Option<K>,
    ) -> Result<Installed, AuthzError> {
        let io = |e: std::io::Error| AuthzError::Io {
            op: "read",
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        // One byte past the cap is enough for `verify_bundle` to refuse it.
        let cap = u64::try_from(MAX_BUNDLE_BYTES + 3).unwrap_or(u64::MAX);
        file.take(cap).read_to_string(&mut text).map_err(io)?;
        self.install_signed(&text, expected_issuer, keys)
    }
}

impl CompiledBundle {
    /// Decides `request` against `entities` with this bundle, whether or not
    /// it is still the one in force. Not recorded in any decision log (for
    /// tools such as `castellan policy test`).
    pub fn decide(&self, request: &AuthzRequest, entities: &Entities) -> Decision {
        evaluate(self, request, entities)
    }
}
