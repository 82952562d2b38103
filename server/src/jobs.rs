//! Background jobs. Each is an idempotent unit with a public `run_once` that tests drive
//! directly, and a cancellable loop that runs it on the one replica holding the leadership.

pub mod consensus;
pub mod maintenance;
