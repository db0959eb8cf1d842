//! Short strings that recur across certificates (CA and solver names,
//! `"ok"`, ACME profiles, an issuer's ARI key identifier) held once and
//! shared by every holder: the config, the state and the store's facts all
//! use it, so it belongs to none of them.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};

use serde::Deserialize;

/// `text` as one allocation shared by every holder: CA and solver names and
/// `"ok"` recur in every certificate's state, and with 100,000 certificates
/// a copy each was 300,000 allocations. Only short values are shared, and
/// only so many, so that varied ones (error messages) cannot grow the set
/// without bound; the rest get a copy of their own.
#[must_use]
pub fn shared(text: &str) -> Arc<str> {
    const LONGEST: usize = 64;
    const MOST: usize = 1024;
    static SHARED: std::sync::LazyLock<std::sync::Mutex<HashSet<Arc<str>>>> =
        std::sync::LazyLock::new(Default::default);
    if text.len() > LONGEST {
        return Arc::from(text);
    }
    let mut set = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(held) = set.get(text) {
        return Arc::clone(held);
    }
    let fresh: Arc<str> = Arc::from(text);
    if set.len() < MOST {
        set.insert(Arc::clone(&fresh));
    }
    fresh
}

/// Reads an optional [`shared`] value (serde's `deserialize_with`).
pub(crate) fn shared_opt<'de, D>(deserializer: D) -> Result<Option<Arc<str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    Ok(text.map(|t| shared(&t)))
}
