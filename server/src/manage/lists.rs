//! Operator-managed lists, the one mechanism behind both `/v1/admin/blocklists` and
//! `palisade-server admin blocklist …`: create, list, edit, import, delete, subscribe. Each
//! action validates, writes through the store and returns the view both front ends show; making
//! the change visible (refreshing snapshots, notifying replicas) is the caller's part.

use palisade_api::native::{
    CreateListRequest, CustomListView, FieldError, ListEntriesRequest, ListEntriesResponse, UpdateListRequest,
};
use time::OffsetDateTime;

use crate::domain::lists::check_list_name;
use crate::domain::text::has_nul;
use crate::serving::custom;
use crate::store::{CustomList, ListOp, ListStore, MachineStore};
use crate::use_case::UseCaseError;

/// The view of a list.
pub fn custom_view(list: &CustomList) -> CustomListView {
    CustomListView {
        name: list.name.clone(),
        kind: list.kind.clone(),
        description: list.description.clone(),
        created_at: crate::domain::time::rfc3339(list.created_at),
        visibility: list.visibility.clone(),
    }
}

/// Who may read a list when the operator does not say: the machines subscribed to it.
pub const DEFAULT_VISIBILITY: &str = "subscribers";

/// Checks a visibility: `public`, `subscribers` or `operator`.
pub fn check_visibility(visibility: &str) -> Result<(), UseCaseError> {
    if matches!(visibility, "public" | "subscribers" | "operator") {
        Ok(())
    } else {
        Err(UseCaseError::invalid(
            "visibility",
            format!("visibility must be public, subscribers or operator, not {visibility:?}"),
        ))
    }
}

/// Changes a list's settings (its visibility).
pub async fn update_list(store: &dyn ListStore, name: &str, request: UpdateListRequest) -> Result<CustomListView, UseCaseError> {
    if let Some(visibility) = &request.visibility {
        check_visibility(visibility)?;
        if !store.set_custom_list_visibility(name, visibility).await? {
            return Err(UseCaseError::NotFound(format!("no custom list named {name:?}")));
        }
    }
    Ok(custom_view(&existing_list(store, name).await?))
}

/// The list `name`, or 404.
pub async fn existing_list(store: &dyn ListStore, name: &str) -> Result<CustomList, UseCaseError> {
    store
        .custom_lists()
        .await?
        .into_iter()
        .find(|l| l.name == name)
        .ok_or_else(|| UseCaseError::NotFound(format!("no custom list named {name:?}")))
}

/// Creates a list (`block` by default, or `allow`).
pub async fn create_list(store: &dyn ListStore, request: CreateListRequest) -> Result<CustomListView, UseCaseError> {
    check_list_name(&request.name).map_err(|m| UseCaseError::invalid("name", m))?;
    let kind = request.kind.unwrap_or_else(|| "block".into());
    if !matches!(kind.as_str(), "block" | "allow") {
        return Err(UseCaseError::invalid("kind", format!("kind must be block or allow, not {kind:?}")));
    }
    if has_nul(&request.description) {
        return Err(UseCaseError::invalid("description", "must not contain NUL"));
    }
    let visibility = request.visibility.unwrap_or_else(|| DEFAULT_VISIBILITY.into());
    check_visibility(&visibility)?;
    let list = CustomList {
        name: request.name,
        kind,
        description: request.description,
        created_at: OffsetDateTime::now_utc(),
        visibility,
    };
    match store.create_custom_list(&list).await {
        Err(crate::store::StoreError::Conflict(_)) => {
            return Err(UseCaseError::Conflict(format!("a list named {:?} already exists", list.name)));
        }
        other => other?,
    }
    Ok(custom_view(&list))
}

/// Every operator-managed list.
pub async fn list_lists(store: &dyn ListStore) -> Result<Vec<CustomListView>, UseCaseError> {
    Ok(store.custom_lists().await?.iter().map(custom_view).collect())
}

/// Deletes a list; consumers following a cursor receive the removal of each entry.
pub async fn delete_list(store: &dyn ListStore, name: &str) -> Result<(), UseCaseError> {
    if !store.delete_custom_list(name, OffsetDateTime::now_utc()).await? {
        return Err(UseCaseError::NotFound(format!("no custom list named {name:?}")));
    }
    Ok(())
}

/// Adds (or renews) and removes entries; values that are not addresses or CIDRs are reported in
/// `rejected`, the others applied.
pub async fn update_entries(
    store: &dyn ListStore,
    name: &str,
    request: &ListEntriesRequest,
) -> Result<ListEntriesResponse, UseCaseError> {
    let duration = request.duration_secs.unwrap_or(custom::DEFAULT_DURATION_SECS);
    // One lifetime for every added value: refused as a whole, before the list is looked up.
    custom::check_duration(duration).map_err(|m| UseCaseError::invalid("duration_secs", m))?;
    existing_list(store, name).await?;
    let now = OffsetDateTime::now_utc();
    let remediation = request.remediation.as_deref().unwrap_or("ban");
    let mut ops = Vec::new();
    let mut rejected = Vec::new();
    for (i, value) in request.add.iter().enumerate() {
        match custom::entry(name, value, remediation, duration, now) {
            Ok(entry) => ops.push(ListOp::Add(entry)),
            Err(message) => rejected.push(FieldError { field: format!("add[{i}]"), message }),
        }
    }
    let added = ops.len();
    for (i, value) in request.remove.iter().enumerate() {
        match crate::domain::net::list_target(value) {
            Some(value) => ops.push(ListOp::Remove { list: name.to_string(), value, reason: "operator".into() }),
            None => rejected
                .push(FieldError { field: format!("remove[{i}]"), message: format!("{value:?} is not an address or CIDR") }),
        }
    }
    let removed = ops.len() - added;
    store.apply_list_ops(&ops, now).await?;
    Ok(ListEntriesResponse { added, removed, rejected })
}

/// Imports entries from text: one address or CIDR per line, or CSV
/// `value[,remediation[,duration_secs]]` (a header line is skipped, `#` starts a comment).
pub async fn import_entries(store: &dyn ListStore, name: &str, text: &str) -> Result<ListEntriesResponse, UseCaseError> {
    existing_list(store, name).await?;
    let now = OffsetDateTime::now_utc();
    let (ops, refused) = custom::parse_import(name, text, now);
    store.apply_list_ops(&ops, now).await?;
    let rejected = refused.into_iter().map(|(line, message)| FieldError { field: format!("line {line}"), message }).collect();
    Ok(ListEntriesResponse { added: ops.len(), removed: 0, rejected })
}

/// Subscribes a machine to a list (or ends the subscription).
pub async fn set_subscription(store: &dyn MachineStore, name: &str, machine: &str, subscribed: bool) -> Result<(), UseCaseError> {
    store.set_list_subscription(machine, name, subscribed).await?;
    Ok(())
}

/// Parses an entry lifetime: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        other => return Err(format!("{text:?} is not a lifetime: unknown unit {other:?} (use s, m, h or d)")),
    };
    let too_long = || format!("{text:?} is longer than ten years ({} seconds)", custom::MAX_DURATION_SECS);
    match number.parse::<i64>() {
        Ok(n) if n > 0 => n.checked_mul(factor).filter(|secs| *secs <= custom::MAX_DURATION_SECS).ok_or_else(too_long),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(too_long()),
        _ => Err(format!("{text:?} is not a positive lifetime such as 3600, 90m, 12h or 30d")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;

    #[test]
    fn lifetimes_take_seconds_or_a_unit() {
        assert_eq!(parse_lifetime("3600"), Ok(3600));
        assert_eq!(parse_lifetime("90m"), Ok(5400));
        assert_eq!(parse_lifetime("12h"), Ok(43_200));
        assert_eq!(parse_lifetime("30d"), Ok(2_592_000));
        for bad in ["", "0", "-5", "12w", "h", "1.5h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lifetimes_past_ten_years_are_refused_with_a_sentence() {
        assert_eq!(parse_lifetime("3660d"), Ok(crate::serving::custom::MAX_DURATION_SECS));
        for long in ["3661d", "9223372036854775807", "99999999999999999999d", "106751991167301d"] {
            let message = parse_lifetime(long).expect_err(long);
            assert!(message.contains("longer than ten years"), "{long}: {message}");
        }
    }
}
