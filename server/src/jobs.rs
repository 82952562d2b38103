//! Background jobs. Each is an idempotent unit with a public `run_once` that tests drive
//! directly, and a cancellable loop that runs it on the one replica holding the leadership
//! (feeds instead claim each feed in the store, so one replica refreshes it).

pub mod consensus;
pub mod feeds;
pub mod maintenance;
