//! Content digests: `sha256:<64 lowercase hex>`, the only algorithm berth stores.
//!
//! A [`Digest`] names a blob in the content store, an image (the digest of its config), a layer's
//! uncompressed tar (its *diff ID*) or a layer chain (its *chain ID*).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The algorithm prefix of every digest berth produces.
pub const SHA256_PREFIX: &str = "sha256:";

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {0:?}: missing algorithm prefix")]
    MissingAlgorithm(String),
    /// An algorithm other than sha256.
    #[error("invalid digest {0:?}: unsupported digest algorithm")]
    UnsupportedAlgorithm(String),
    /// The encoded part is not 64 lowercase hex characters.
    #[error("invalid digest {0:?}: invalid checksum digest format")]
    BadHex(String),
}

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_string()));
        };
        if algo != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm(s.to_string()));
        }
        if !crate::id::is_full_id(hex) {
            return Err(DigestError::BadHex(s.to_string()));
        }
        Ok(Digest(s.to_string()))
    }

    /// Builds a digest from 64 lowercase hex characters (no prefix).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::parse(&format!("{SHA256_PREFIX}{hex}"))
    }

    /// Builds a digest from the 32 raw bytes of a SHA-256 sum.
    pub fn from_sha256_bytes(sum: &[u8; 32]) -> Digest {
        Digest(format!("{SHA256_PREFIX}{}", crate::id::to_hex(sum)))
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[SHA256_PREFIX.len()..]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character short form of the hex part.
    pub fn short(&self) -> &str {
        crate::id::short(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    #[test]
    fn parses_and_displays() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.hex(), HEX);
        assert_eq!(d.to_string(), format!("sha256:{HEX}"));
        assert_eq!(d.short(), "a3ed95caeb02");
        assert_eq!(Digest::from_hex(HEX).unwrap(), d);
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            Digest::parse(HEX),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha512:{HEX}")),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(Digest::parse("sha256:abc"), Err(DigestError::BadHex(_))));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", HEX.to_uppercase())),
            Err(DigestError::BadHex(_))
        ));
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::from_hex(HEX).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"sha256:{HEX}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
