//! Shared domain types of Castellan: durations as written in configs and on the
//! command line, the injected clock, the claims of an access token, the
//! probe run's report and the platform report.
#![forbid(unsafe_code)]

pub mod claims;
pub mod clock;
pub mod diff;
pub mod duration;
pub mod observe;
pub mod platform;
pub mod probe_run;

pub use claims::{AccessTokenClaims, Actor, Confirmation};
pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use duration::{format_duration, parse_duration, DurationError, HumanDuration};
