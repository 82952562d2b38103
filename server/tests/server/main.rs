//! The server's integration tests, one binary: in-process API tests over the real router and
//! state (`abuseipdb`, `api`, `blocklists`, `bouncers`, `distribution`, `lookup`, `cti`, `compressed`, `visibility`,
//! `feeds`, `lifecycle`, `console`), the wire
//! recording (`golden`), the OpenAPI drift check (`openapi`), the module-layout check (`layout`),
//! and the hostile-client reproductions: input time bounds (`time_bounds`), PostgreSQL outages
//! (`outage`), revocation (`revocation`), storage amplification (`amplification`), limits at the edge (`edge`) and canaries
//! that must not be told apart (`canaries`); `common` is their shared set-up. One binary links
//! the server once instead of once per family.
//! Run one family with its module prefix:
//!
//! ```text
//! cargo test -p palisade-server --test server golden::
//! ```

mod abuseipdb;
mod amplification;
mod api;
mod blocklists;
mod bouncers;
mod canaries;
mod common;
mod compressed;
mod console;
mod cti;
mod distribution;
mod edge;
mod feeds;
mod golden;
mod layout;
mod lifecycle;
mod lookup;
mod openapi;
mod outage;
mod pools;
mod revocation;
mod time_bounds;
mod visibility;
