//! Manifests, indexes, descriptors and platforms: Docker v2 schema 2 and OCI image manifests,
//! Docker manifest lists and OCI indexes, and the platform choice in an index (containerd's
//! matcher: os and architecture equal, arm variants falling back to older ones, best first).

use berth_types::Digest;
use serde::{Deserialize, Serialize};

use crate::Error;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Legacy signed schema 1, which berth does not read.
pub const DOCKER_MANIFEST_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header of a manifest request: every type berth reads. Without it distribution
/// 2.8 converts schema 2 manifests to schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// An os/architecture/variant triple: `linux/amd64`, `linux/arm/v7`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl Platform {
    /// `linux/amd64`, `linux/arm/v7`, `arm64` (os defaults to linux).
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || {
            Error::InvalidArgument(format!(
                "\"{s}\": unknown operating system or architecture: invalid argument"
            ))
        };
        let (os, arch, variant) = match parts.as_slice() {
            [arch] if !arch.is_empty() && *arch != "linux" => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(bad()),
        };
        if os.is_empty() || arch.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(bad());
        }
        Ok(Platform::new(
            &os.to_lowercase(),
            &arch.to_lowercase(),
            variant.map(str::to_lowercase).as_deref(),
        ))
    }

    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// The platform this program runs on (`linux/amd64`, `linux/arm64/v8`, …).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None).normalized()
    }

    /// containerd's normalisation: `x86_64` → amd64, `aarch64` → arm64 (variant v8), arm without
    /// variant → v7, amd64/v1 → amd64.
    pub fn normalized(&self) -> Platform {
        let mut p = self.clone();
        p.os = p.os.to_lowercase();
        let (arch, variant) = match (p.architecture.to_lowercase().as_str(), p.variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", Some("v1")) | ("x86_64" | "x86-64" | "amd64", None) => {
                ("amd64".into(), None)
            }
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".into(), v.map(str::to_string)),
            ("aarch64" | "arm64", None | Some("8") | Some("v8")) => ("arm64".into(), Some("v8".into())),
            ("aarch64" | "arm64", v) => ("arm64".into(), v.map(str::to_string)),
            ("armhf", _) => ("arm".into(), Some("v7".into())),
            ("armel", _) => ("arm".into(), Some("v6".into())),
            ("arm", None) => ("arm".into(), Some("v7".into())),
            ("arm", Some(v)) => (
                "arm".into(),
                Some(if v.starts_with('v') {
                    v.to_string()
                } else {
                    format!("v{v}")
                }),
            ),
            ("i386" | "i686", v) => ("386".into(), v.map(str::to_string)),
            (a, v) => (a.to_string(), v.map(str::to_string)),
        };
        p.architecture = arch;
        p.variant = variant;
        p
    }

    /// How well an entry's platform serves `self` (the wanted one): `None` if it cannot run,
    /// else a rank, 0 best. arm/vN accepts vN, then older variants down to v5; arm64/v8 also
    /// runs nothing older than v8 here (as containerd without arm/v7 emulation).
    pub fn rank(&self, entry: &Platform) -> Option<u32> {
        let (w, e) = (self.normalized(), entry.normalized());
        if w.os != e.os || w.architecture != e.architecture {
            return None;
        }
        if w.variant == e.variant {
            return Some(0);
        }
        let num = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.trim_start_matches('v').parse::<u32>().ok())
        };
        match (w.architecture.as_str(), num(&w.variant), num(&e.variant)) {
            ("arm", Some(want), Some(have)) if have < want && have >= 5 => Some(want - have),
            _ => None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor: what a manifest or index says about a blob or a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: vec![],
            platform: None,
            annotations: None,
        }
    }
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A Docker manifest list or OCI index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The best entry for `platform` (first in index order among the best ranked).
    pub fn choose(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .filter(|d| is_manifest_type(&d.media_type) || d.media_type.is_empty())
            .filter_map(|d| Some((platform.rank(d.platform.as_ref()?)?, d)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
    }
}

/// Whether `t` names an image manifest (not an index).
pub fn is_manifest_type(t: &str) -> bool {
    t == DOCKER_MANIFEST || t == OCI_MANIFEST
}

/// Whether `t` names an index or manifest list.
pub fn is_index_type(t: &str) -> bool {
    t == DOCKER_MANIFEST_LIST || t == OCI_INDEX
}

/// A fetched manifest or index, by what its bytes say.
#[derive(Debug, Clone)]
pub enum Parsed {
    Manifest(Box<Manifest>),
    Index(Index),
}

/// Reads manifest bytes. The media type is the `Content-Type` the registry sent, else the body's
/// `mediaType`, else guessed from the shape (`manifests` → an index), as containerd does.
pub fn parse(content_type: &str, bytes: &[u8]) -> Result<(String, Parsed), Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        schema_version: u32,
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| Error::BadManifest(format!("invalid manifest: {e}")))?;
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let mut media_type = match probe.media_type.as_deref() {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => ct.to_string(),
    };
    if !is_manifest_type(&media_type) && !is_index_type(&media_type) {
        media_type = if probe.schema_version == 1 || ct == DOCKER_MANIFEST_V1_SIGNED {
            return Err(Error::BadManifest(
                "unsupported manifest format: Docker Image manifest, version 2, schema 1 (deprecated)".into(),
            ));
        } else if probe.manifests.is_some() {
            OCI_INDEX.to_string()
        } else if probe.config.is_some() {
            OCI_MANIFEST.to_string()
        } else {
            return Err(Error::BadManifest(format!(
                "unsupported manifest media type {media_type:?}"
            )));
        };
    }
    let bad = |e: serde_json::Error| Error::BadManifest(format!("invalid manifest {media_type}: {e}"));
    let parsed = if is_index_type(&media_type) {
        Parsed::Index(serde_json::from_slice(bytes).map_err(bad)?)
    } else {
        Parsed::Manifest(Box::new(serde_json::from_slice(bytes).map_err(bad)?))
    };
    Ok((media_type, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str) -> Descriptor {
        let mut d = Descriptor::new(
            OCI_MANIFEST,
            Digest::from_hex(&format!(
                "{:064x}",
                p.len() as u64 + p.bytes().map(u64::from).sum::<u64>()
            ))
            .unwrap(),
            1,
        );
        d.platform = Some(Platform::parse(p).unwrap());
        d
    }

    #[test]
    fn platforms_parse_and_print() {
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().normalized().to_string(),
            "linux/arm64/v8"
        );
    }

    #[test]
    fn the_index_entry_is_chosen_by_platform_and_variant() {
        let idx = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                entry("linux/amd64"),
                entry("linux/arm/v6"),
                entry("linux/arm/v7"),
                entry("linux/arm64/v8"),
            ],
        };
        let pick = |p: &str| {
            idx.choose(&Platform::parse(p).unwrap())
                .map(|d| d.platform.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("linux/arm/v7"));
        assert_eq!(
            pick("linux/arm").as_deref(),
            Some("linux/arm/v7"),
            "arm means arm/v7"
        );
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("linux/arm/v6"));
        assert_eq!(
            pick("linux/arm/v8").as_deref(),
            Some("linux/arm/v7"),
            "older arm variants run"
        );
        assert_eq!(
            pick("linux/arm64").as_deref(),
            Some("linux/arm64/v8"),
            "arm64 means arm64/v8"
        );
        assert_eq!(pick("linux/arm/v5"), None, "newer variants do not");
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
    }

    #[test]
    fn media_types_come_from_the_body_the_header_or_the_shape() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse("", idx).unwrap().0, OCI_INDEX);
        assert_eq!(parse(DOCKER_MANIFEST_LIST, idx).unwrap().0, DOCKER_MANIFEST_LIST);
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(parse(DOCKER_MANIFEST_V1_SIGNED, v1)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
    }
}
