//! The internal ids rows refer to each other by, shared by every capability.

/// Internal numeric id of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineKey(pub i64);

/// Internal numeric id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey(pub i64);
