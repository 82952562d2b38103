//! The server's integration tests, one binary: in-process API tests over the real router and
//! state (`api`, `blocklists`, `distribution`, `lookup`), the wire recording (`golden`), the
//! OpenAPI drift check (`openapi`), the module-layout check (`layout`), input time bounds
//! (`time_bounds`), PostgreSQL outages (`outage`) and storage amplification (`amplification`);
//! `common` is their shared set-up. One binary links the server once instead of once per family.
//! Run one family with its module prefix:
//!
//! ```text
//! cargo test -p palisade-server --test server golden::
//! ```

mod amplification;
mod api;
mod blocklists;
mod common;
mod distribution;
mod edge;
mod golden;
mod layout;
mod lookup;
mod openapi;
mod outage;
mod time_bounds;
