//! The end-to-end tests, one binary: each module is one family, run against real processes
//! (the server, the agent, CrowdSec, fail2ban, nginx, a browser) on `127.0.0.1:0`. One binary
//! links the server once instead of once per family. Run one family with its module prefix, e.g.
//! `cargo test -p palisade-tests --test e2e console::`.
//!
//! The modules share one process: a test must not change process-wide state (environment
//! variables, the current directory) and must take its ports, temporary directories and network
//! namespace names fresh, never fixed.

mod agent;
mod blocklist_cli;
mod bouncer;
mod change_notification;
mod client;
mod consensus;
mod console;
mod crowdsec;
mod deploy;
mod durability;
mod edge;
mod engine_properties;
mod fail2ban;
mod feed_cli;
mod firewall_formats;
mod lookup_cli;
mod observability;
mod quota;
mod readme;
mod replicas;
mod revocation;
mod server_cli;
mod simulator;
