//! Blocklist names: the community list the consensus worker writes, and the names an operator
//! may give the lists it manages.

/// The community list's name.
pub const COMMUNITY: &str = "community";

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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_are_checked() {
        assert!(check_list_name("partners-2026.v1").is_ok());
        for bad in ["", "Community", "community", "a b", "x/y", &"a".repeat(65)] {
            assert!(check_list_name(bad).is_err(), "{bad:?}");
        }
    }
}
