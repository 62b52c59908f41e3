//! Command-line grammar and dispatch.

use crate::{admin, gate, serve, users, workload};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Castellan: the auth foundation for microservice platforms.
#[derive(Debug, Parser)]
#[command(name = "castellan", version, about)]
pub struct Cli {
    /// Log format of long-running commands.
    #[arg(long, global = true, env = "CASTELLAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authority.
    Serve(serve::ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect and rotate signing keys on a running authority.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage OAuth clients on a running authority.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage people (users) on a running authority.
    #[command(subcommand)]
    User(UserCommand),
    /// Revoke sessions on a running authority.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Revoke every token of a subject issued until now.
    #[command(subcommand)]
    Subjects(SubjectsCommand),
    /// Show the verifiers (libraries and gates) connected to the authority.
    #[command(subcommand)]
    Verifiers(VerifiersCommand),
    /// Run the verifier in front of a service: reverse proxy, or forward-auth.
    Gate(gate::GateArgs),
    /// Workload identity: register SPIFFE IDs, fetch X.509 SVIDs with a join token.
    #[command(subcommand)]
    Workload(workload::WorkloadCommand),
    /// The internal CA: list CAs, rotate to the published next CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Cedar policies per service: push, list, show, diff, rollback, test.
    #[command(subcommand)]
    Policy(crate::policy::PolicyCommand),
    /// The central decision log: what each service's policies decided.
    Decisions(crate::decisions::DecisionsArgs),
    /// Fire forged and canary tokens at services and report which checks each gets wrong.
    Probe(crate::probe::ProbeArgs),
    /// The platform report: the stage of auth debt the platform is at, from what the
    /// authority knows (services, verifiers and their lag, keys, token lifetimes, policies)
    /// and the last recorded probe runs, each finding with its evidence.
    Report(crate::report::ReportArgs),
    /// The audit trail: list events, export them as JSON lines for a SIEM, verify the hash chain.
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Print a shell completion script: `castellan completions bash > /etc/bash_completion.d/castellan`,
    /// `castellan completions zsh > "${fpath[1]}/_castellan"`, or
    /// `castellan completions fish > ~/.config/fish/completions/castellan.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Work on a store directly, with the authority stopped: move a single node to PostgreSQL.
    #[command(subcommand)]
    Store(crate::store_cmd::StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// List the CAs in the trust bundle and their states.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Make the published next CA sign now; the old one stays in the bundle until its SVIDs expire.
    /// Refused while the next CA is younger than `ca.max_svid_ttl` (workloads
    /// learn it when they renew) unless `--force`.
    Rotate {
        /// Rotate anyway (after a CA compromise): workloads that have not
        /// renewed since the next CA was published fail handshakes until they renew.
        #[arg(long)]
        force: bool,
        /// The active CA is compromised: remove it from the trust bundle at once
        /// (implies --force). Every SVID it signed stops verifying; those
        /// workloads need new join tokens.
        #[arg(long)]
        emergency: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a person; without `--password-stdin` they can only sign in through federation.
    Create {
        /// Sign-in name: 1 to 64 of a-z 0-9 . _ - @ +.
        username: String,
        /// Read the password from stdin (all of it, minus one trailing newline).
        #[arg(long)]
        password_stdin: bool,
        /// Link the person to this subject at the configured federation provider.
        #[arg(long, value_name = "SUB")]
        federated_subject: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List people.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one person and their live sessions.
    Show {
        /// Username or user id.
        username: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a person; their sessions end and their tokens are revoked.
    Delete {
        /// Username or user id.
        username: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set a person's password; ends their sessions unless `--keep-sessions`.
    SetPassword {
        /// Username or user id.
        username: String,
        /// Read the new password from stdin (all of it, minus one trailing newline).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Keep the person's sessions and tokens alive.
        #[arg(long)]
        keep_sessions: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Suspend a person: no sign-in or refresh; their sessions end and their tokens are revoked.
    Suspend {
        /// Username or user id.
        username: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Lift a suspension.
    Resume {
        /// Username or user id.
        username: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Revoke a session (`sid`): every verifier refuses its tokens within a second.
    Revoke {
        /// The session id.
        sid: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubjectsCommand {
    /// Revoke every token of a subject issued until now.
    Revoke {
        /// The subject.
        sub: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum VerifiersCommand {
    /// List verifiers: audience, kids held, stream lag, liveness.
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (and the CASTELLAN_* overrides) without starting anything.
    Check {
        /// The file; also `--config` or CASTELLAN_CONFIG.
        file: Option<PathBuf>,
        #[command(flatten)]
        serve: serve::ServeArgs,
        /// Print the effective configuration as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How admin commands reach and authenticate to the authority.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Authority URL.
    #[arg(
        long,
        env = "CASTELLAN_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// JSON file with `client_id` and `client_secret` (such as bootstrap-admin.json).
    #[arg(long, global = true)]
    pub credentials: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also trust this PEM CA certificate when the server is `https://`.
    #[arg(long, env = "CASTELLAN_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their states.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Make the published next key active now; `--emergency` withdraws the active key at once.
    Rotate {
        /// Withdraw the active key (compromise): removed from JWKS, its tokens invalid.
        #[arg(long)]
        emergency: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process from the command line; boxing would only obscure clap's derive"
)]
pub enum ClientCommand {
    /// Register a client; prints its id and (once) its secret.
    Create {
        /// Human name.
        name: String,
        /// Service(s) it may get tokens for (required unless the client is an admin
        /// or only ships decision logs, `--scope castellan.decisions:SERVICE`).
        #[arg(long = "audience", num_args = 1..)]
        audiences: Vec<String>,
        /// Scope(s) it may be granted.
        #[arg(long = "scope", num_args = 1..)]
        scopes: Vec<String>,
        /// Access-token lifetime for this client (`30s`, `5m`, `1h`).
        #[arg(long)]
        access_token_ttl: Option<String>,
        /// JWK Set file for private_key_jwt; no secret is issued then.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// A public client (browser or native app): no secret, PKCE required; needs `--redirect-uri`.
        #[arg(long)]
        public: bool,
        /// Redirect URI(s) for the authorization-code flow.
        #[arg(long = "redirect-uri", num_args = 1..)]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the browser back to.
        #[arg(long = "post-logout-redirect-uri", num_args = 1..)]
        post_logout_redirect_uris: Vec<String>,
        /// The audience this client itself serves (it may exchange tokens sent to it).
        #[arg(long, value_name = "AUD")]
        serves: Option<String>,
        /// Audience(s) it may exchange tokens toward (RFC 8693); needs --serves.
        #[arg(long = "exchange-audience", num_args = 1.., value_name = "AUD")]
        exchange_audiences: Vec<String>,
        /// Authenticate with an SVID naming this SPIFFE ID (RFC 8705
        /// tls_client_auth, on the mTLS listener): no secret, tokens bound to the certificate.
        #[arg(long = "tls-client-auth", value_name = "SPIFFE_ID")]
        tls_client_auth: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List clients.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one client.
    Show {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a client; its live tokens stop being valid.
    Delete {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke every token issued to a client until now (the client keeps working for new tokens).
    Revoke {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Issue a new secret; the old one stops working at once.
    RotateSecret {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args, cli.log_format).await,
        Command::Config(ConfigCommand::Check { file, serve, json }) => serve::check(file, serve, json),
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Client(cmd) => admin::client(cmd).await,
        Command::User(cmd) => users::run(cmd).await,
        Command::Sessions(SessionsCommand::Revoke { sid, conn }) => admin::revoke("sessions", &sid, &conn).await,
        Command::Subjects(SubjectsCommand::Revoke { sub, conn }) => admin::revoke("subjects", &sub, &conn).await,
        Command::Verifiers(VerifiersCommand::List { conn }) => admin::verifiers(&conn).await,
        Command::Gate(args) => gate::run(args, cli.log_format).await,
        Command::Workload(cmd) => workload::run(cmd).await,
        Command::Ca(cmd) => admin::ca(cmd).await,
        Command::Policy(cmd) => crate::policy::run(cmd).await,
        Command::Decisions(args) => crate::decisions::run(args).await,
        Command::Probe(args) => crate::probe::run(args).await,
        Command::Report(args) => crate::report::run(args).await,
        Command::Audit(cmd) => crate::audit::run(cmd).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut command, "castellan", &mut out);
            Ok(())
        }
        Command::Store(cmd) => crate::store_cmd::run(cmd).await,
    }
}
