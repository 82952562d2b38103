//! The server's integration tests, one binary: in-process API tests over the real router and
//! state (`api`, `blocklists`, `distribution`, `lookup`), the wire recording (`golden`), the
//! OpenAPI drift check (`openapi`) and the module-layout check (`layout`); `common` is their
//! shared set-up. One binary links the server once instead of once per family. Run one family
//! with its module prefix:
//!
//! ```text
//! cargo test -p palisade-server --test server golden::
//! ```

mod api;
mod blocklists;
mod canaries;
mod common;
mod compressed;
mod distribution;
mod golden;
mod layout;
mod lookup;
mod openapi;
mod visibility;
