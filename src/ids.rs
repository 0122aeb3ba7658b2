//! Identifier newtypes: a top-up id, a settlement reference and an account group are all UUIDs,
//! but never interchangeable.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A text that is not a UUID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a UUID (expected e.g. 1ab4fef9-a097-4c6f-9345-647025d5fde6)")]
pub struct BadUuid {
    /// The offending text, clipped.
    pub text: String,
}

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = BadUuid;

            /// Accepts the hyphenated or the 32-digit form, in any case.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let trimmed = text.trim();
                let well_formed = matches!(trimmed.len(), 32 | 36);
                match Uuid::try_parse(trimmed) {
                    Ok(uuid) if well_formed => Ok(Self(uuid)),
                    _ => Err(BadUuid { text: crate::text::clip(text, 40) }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_newtype!(
    /// The top-up's own id.
    TopUpId
);
uuid_newtype!(
    /// The reference a payer must quote: `topup <settlement_reference>`.
    SettlementReference
);
uuid_newtype!(
    /// The customer's account group that a top-up credits.
    AccountGroupId
);
uuid_newtype!(
    /// One `recon run` (time-ordered UUID v7).
    RunId
);

/// The prefix of the end-to-end id of every return recon initiates (`RECON-RET-<n>`, at most
/// 35 characters as ISO 20022 allows).
pub const RETURN_PREFIX: &str = crate::returns::pain001::END_TO_END_PREFIX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_lower_case_hyphenated() {
        let r: SettlementReference = "1AB4FEF9A0974C6F9345647025D5FDE6".parse().unwrap();
        assert_eq!(r.to_string(), "1ab4fef9-a097-4c6f-9345-647025d5fde6");
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "1ab4fef9-a097-4c6f-9345",
            "{1ab4fef9-a097-4c6f-9345-647025d5fde6}",
            "urn:uuid:1ab4fef9-a097-4c6f-9345-647025d5fde6",
            "zab4fef9-a097-4c6f-9345-647025d5fde6",
        ] {
            assert!(bad.parse::<TopUpId>().is_err(), "{bad:?}");
        }
    }
}
