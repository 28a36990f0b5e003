//! Deserializing the engine's `&'static str` labels (problem codes, severities, format names) from a
//! shard's serialized state: each distinct string is leaked once and shared afterwards, so memory
//! stays bounded by the (small) set of labels however many shards are merged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Deserializer};

/// A `&'static str` field of a serialized type. (Through this alias serde's derive does not see a
/// `&str`, which it would borrow from the input instead of calling the `deserialize_with` below.)
pub type Label = &'static str;

/// The one `&'static str` equal to `s`.
pub fn intern(s: &str) -> &'static str {
    static STRINGS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut strings = STRINGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = strings.get(s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    strings.insert(leaked);
    leaked
}

/// `#[serde(deserialize_with = "interned::str")]`
pub fn str<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    Ok(intern(&String::deserialize(d)?))
}

/// `#[serde(deserialize_with = "interned::option")]`
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| intern(&s)))
}

/// `#[serde(deserialize_with = "interned::keys")]`
pub fn keys<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<&'static str, u64>, D::Error> {
    Ok(BTreeMap::<String, u64>::deserialize(d)?.into_iter().map(|(k, v)| (intern(&k), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation() {
        let a = intern(&String::from("invalid_json"));
        let b = intern("invalid_json");
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern("x"), "x");
    }
}
