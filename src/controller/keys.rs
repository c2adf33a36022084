//! Compact keys for what the operator keeps per object (failure counts, status bookkeeping,
//! metric state): at 100,000 objects a `String` uid and a `String` namespace per entry of each
//! map were ≈ 0.6 KiB per object (heaptrack, docs/BENCHMARKS.md section 9).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

/// An object's uid as a map key. The apiserver assigns lowercase canonical UUIDs, kept as their
/// 16 bytes (no allocation); any other text is kept as it is. Two different uid strings never
/// make the same key: only the canonical lowercase form becomes bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Uid {
    /// A canonical lowercase UUID (`8-4-4-4-12` hex digits).
    Uuid([u8; 16]),
    /// Anything else (test objects, other apiservers).
    Other(Box<str>),
}

impl Uid {
    /// The key of `uid`.
    pub fn new(uid: &str) -> Self {
        match parse_uuid(uid) {
            Some(bytes) => Uid::Uuid(bytes),
            None => Uid::Other(uid.into()),
        }
    }
}

impl From<&str> for Uid {
    fn from(uid: &str) -> Self {
        Uid::new(uid)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Other(text) => f.write_str(text),
            Uid::Uuid(bytes) => {
                for (i, b) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({self})")
    }
}

/// The 16 bytes of a canonical lowercase UUID, `None` for any other text.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let raw = text.as_bytes();
    if raw.len() != 36 {
        return None;
    }
    let mut digits = [0u8; 32];
    let mut n = 0;
    for (i, &c) in raw.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        digits[n] = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        n += 1;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (digits[2 * i] << 4) | digits[2 * i + 1];
    }
    Some(bytes)
}

/// One shared copy of each namespace name (a cluster has few namespaces and many objects).
#[derive(Default)]
pub struct Namespaces(Mutex<HashSet<Arc<str>>>);

impl Namespaces {
    /// The shared copy of `namespace`. Namespaces are never dropped: their number is bounded by
    /// the cluster's.
    pub fn intern(&self, namespace: &str) -> Arc<str> {
        let mut set = self.0.lock();
        if let Some(shared) = set.get(namespace) {
            return shared.clone();
        }
        let shared: Arc<str> = namespace.into();
        set.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_lowercase_uuids_become_bytes_and_every_uid_prints_as_given() {
        let canonical = "6f1c0d2e-8d3b-4a57-9c1e-0b8a4f3e2d1c";
        // (uid, kept as bytes)
        let table = [
            (canonical, true),
            ("00000000-0000-0000-0000-000000000000", true),
            ("6F1C0D2E-8D3B-4A57-9C1E-0B8A4F3E2D1C", false),
            ("6f1c0d2e8d3b4a579c1e0b8a4f3e2d1c", false),
            ("6f1c0d2e-8d3b-4a57-9c1e-0b8a4f3e2d1", false),
            ("6f1c0d2e-8d3b-4a57-9c1e-0b8a4f3e2d1g", false),
            ("6f1c0d2e_8d3b-4a57-9c1e-0b8a4f3e2d1c", false),
            ("u1", false),
            ("", false),
        ];
        for (text, bytes) in table {
            let uid = Uid::new(text);
            assert_eq!(matches!(uid, Uid::Uuid(_)), bytes, "{text}");
            assert_eq!(uid.to_string(), text);
        }
        assert_ne!(
            Uid::new(canonical),
            Uid::new(&canonical.to_uppercase()),
            "different text, different key"
        );
        assert_eq!(Uid::new(canonical), Uid::from(canonical));
    }

    #[test]
    fn a_namespace_is_stored_once() {
        let names = Namespaces::default();
        let a = names.intern("skills");
        let b = names.intern(&String::from("skills"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &names.intern("other")));
    }
}
