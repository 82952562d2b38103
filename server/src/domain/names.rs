//! Validation of the names people and machines choose: machine logins, account names,
//! scenario names.

/// Checks a machine login or account name: 1–`max` characters of `[A-Za-z0-9._-]`.
pub fn check_name(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max {
        return Err(format!("must be 1 to {max} characters long"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err("may only contain letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

/// Checks a scenario name such as `crowdsecurity/ssh-bf`: 1–128 printable ASCII characters
/// without spaces.
pub fn check_scenario(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 128 {
        return Err("scenario must be 1 to 128 characters long".into());
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("scenario must be printable ASCII without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_crowdsec_ids_and_reject_junk() {
        assert!(check_name("3d1219c7c4c5404aaa1f6d2a48adfda4sV1RGoaK1b5hzliP", 128).is_ok());
        assert!(check_name("web-01.example", 128).is_ok());
        assert!(check_name("", 128).is_err());
        assert!(check_name("a b", 128).is_err());
        assert!(check_name("é", 128).is_err());
        assert!(check_name(&"a".repeat(129), 128).is_err());
    }

    #[test]
    fn scenarios_are_printable() {
        assert!(check_scenario("crowdsecurity/ssh-bf_user-enum").is_ok());
        assert!(check_scenario("a b").is_err());
        assert!(check_scenario("").is_err());
    }
}
