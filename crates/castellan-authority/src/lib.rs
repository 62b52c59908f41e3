//! `castellan serve`: the authority. An OAuth 2 token service
//! (`client_credentials` with `client_secret_basic`, `client_secret_post` and
//! `private_key_jwt`), discovery, JWKS, introspection, revocation, the admin
//! API, and a key manager that rotates signing keys on a schedule.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authority;
pub mod ca;
pub mod cluster;
pub mod config;
pub mod events;
pub mod federation;
pub mod gauges;
pub mod http;
pub mod keys;
pub mod mtls;
pub mod passwords;
pub mod report;
pub mod secrets;
pub mod server;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use authority::{Authority, StartEnv, StartError, ADMIN_SCOPE, BOOTSTRAP_FILE};
pub use config::{Config, ConfigError};
