//! The drift probe's battery. `castellan probe` fires, at every service,
//! tokens each service must treat the same way: one genuine token it must
//! accept, and forgeries and canaries it must refuse. This crate holds the
//! check ids ([`CheckId`], the public contract) and the forgeries that need
//! no help from the authority ([`Forger`]): an unsigned token, HMAC keyed
//! with the public key, a broken signature, a key nobody published, a key
//! embedded in the header, and a key fetched from a URL the token names.
//! Canaries that need real signatures (expired, wrong audience, removed
//! key, revoked session, ...) are minted by the authority.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod der;
mod forge;
mod html;
mod platform_html;
mod run;

pub use check::CheckId;
pub use der::{spki_der, spki_pem};
pub use forge::{ForgeError, Forger};
pub use html::html_report;
pub use platform_html::platform_html;
pub use run::{fire, CheckResult, Pace, ProbeConfig, Shot, Target, TargetReport, TargetSpec};
