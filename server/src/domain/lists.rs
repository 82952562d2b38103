//! Blocklist names: the community list the consensus worker writes, each account's private
//! pool, and the names an operator may give the lists it manages.

/// The community list's name.
pub const COMMUNITY: &str = "community";

/// What every account pool's name starts with; no operator list may take it.
pub const POOL_PREFIX: &str = "pool-";

/// The name of an account's private pool: `pool-<account id>` (ids never change, names might).
pub fn pool_list(account: i64) -> String {
    format!("{POOL_PREFIX}{account}")
}

/// The account whose pool `name` is, if it names one.
pub fn pool_account(name: &str) -> Option<i64> {
    let id = name.strip_prefix(POOL_PREFIX)?;
    // The canonical spelling only (no sign, no leading zero), so one pool has one name.
    if id.is_empty() || id.starts_with('0') || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// Checks a custom list name: lowercase ASCII letters, digits, `-`, `_`, `.`, 1 to 64 bytes, not
/// a reserved name.
pub fn check_list_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(format!("list names are 1 to 64 lowercase letters, digits, '-', '_' or '.', not {name:?}"));
    }
    if name == COMMUNITY {
        return Err(format!("{COMMUNITY:?} is the consensus list"));
    }
    if name.starts_with(POOL_PREFIX) {
        return Err(format!("names starting with {POOL_PREFIX:?} are the accounts' private pools"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_are_checked() {
        assert!(check_list_name("partners-2026.v1").is_ok());
        for bad in ["", "Community", "community", "a b", "x/y", &"a".repeat(65), "pool-3", "pool-x"] {
            assert!(check_list_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pool_names_round_trip_and_only_the_canonical_spelling_names_a_pool() {
        assert_eq!(pool_list(42), "pool-42");
        assert_eq!(pool_account(&pool_list(42)), Some(42));
        for not_a_pool in ["pool-", "pool-042", "pool--1", "pool-+1", "pool-1a", "community", "pool-99999999999999999999"] {
            assert_eq!(pool_account(not_a_pool), None, "{not_a_pool:?}");
        }
    }
}
