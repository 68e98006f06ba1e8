//! Identifier newtypes, validated on construction.
//!
//! Ids travel as JSON strings. They are limited to printable ASCII without spaces so
//! that they can appear in logs, URLs and SQL without quoting surprises.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which id was being parsed.
        kind: &'static str,
    },
    /// The string was longer than the id allows.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which id was being parsed.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// The string held a character ids may not hold.
    #[error("{kind} may only hold letters, digits and - _ . @ : (found {found:?})")]
    BadChar {
        /// Which id was being parsed.
        kind: &'static str,
        /// The first offending character.
        found: char,
    },
}

fn validate(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':')))
    {
        return Err(IdError::BadChar { kind, found });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted id, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parses and validates an id.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate($kind, &s, $max)?;
                Ok(Self(s))
            }

            /// Parses a field where the empty string means "not given".
            pub fn optional(s: &str) -> Result<Option<Self>, IdError> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    Self::new(s).map(Some)
                }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A user's id (OpenIM `userID`).
    UserId, "userID", 64
);
id_type!(
    /// A call's room id (OpenIM `roomID`); one room per call.
    RoomId, "roomID", 128
);
id_type!(
    /// A group's id (OpenIM `groupID`).
    GroupId, "groupID", 64
);
id_type!(
    /// One device of a user: one connection at a time. Chosen by the client and kept
    /// across reconnects, so that a reconnecting device resumes its call.
    DeviceId, "deviceID", 128
);

/// OpenIM's platform ids (`platformID`). Unknown numbers are refused on login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlatformId(u8);

impl PlatformId {
    /// iOS.
    pub const IOS: Self = Self(1);
    /// Android.
    pub const ANDROID: Self = Self(2);
    /// Windows.
    pub const WINDOWS: Self = Self(3);
    /// macOS.
    pub const OSX: Self = Self(4);
    /// Web.
    pub const WEB: Self = Self(5);
    /// Mini web app.
    pub const MINI_WEB: Self = Self(6);
    /// Linux desktop.
    pub const LINUX: Self = Self(7);
    /// Android tablet.
    pub const ANDROID_PAD: Self = Self(8);
    /// iPad.
    pub const IPAD: Self = Self(9);

    /// Validates a platform number (1..=9, as OpenIM defines them).
    pub fn new(n: u8) -> Option<Self> {
        (1..=9).contains(&n).then_some(Self(n))
    }

    /// The wire number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Serialize for PlatformId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for PlatformId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        PlatformId::new(n).ok_or_else(|| {
            serde::de::Error::custom(format!("platformID {n} is not one of OpenIM's 1..=9"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_odd_characters() {
        assert!(UserId::new("alice").is_ok());
        assert_eq!(UserId::new(""), Err(IdError::Empty { kind: "userID" }));
        assert!(matches!(
            UserId::new("a".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(
            UserId::new("a b"),
            Err(IdError::BadChar { found: ' ', .. })
        ));
        assert_eq!(RoomId::optional("").unwrap(), None);
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let e = serde_json::from_str::<UserId>("\"x y\"").unwrap_err();
        assert!(e.to_string().contains("may only hold"), "{e}");
        let e = serde_json::from_str::<PlatformId>("12").unwrap_err();
        assert!(e.to_string().contains("platformID 12"), "{e}");
    }
}
