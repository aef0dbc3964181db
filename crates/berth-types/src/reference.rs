//! Image references, parsed and normalised exactly like docker's `distribution/reference`.
//!
//! ```text
//! reference       := name [ ":" tag ] [ "@" digest ]
//! name            := [domain "/"] path-component ["/" path-component]*
//! domain          := host [":" port-number]
//! host            := domain-name | "[" ipv6 "]"
//! domain-name     := domain-component ["." domain-component]*
//! domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number     := /[0-9]+/
//! path-component  := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric   := /[a-z0-9]+/
//! separator       := /[_.]|__|[-]+/
//! tag             := /[\w][\w.-]{0,127}/
//! digest          := algorithm ":" /[0-9a-fA-F]{32,}/
//! ```
//!
//! Normalising (`ParseNormalizedNamed` + `TagNameOnly`): a first component that has no `.` or `:`,
//! is not `localhost` and is lowercase is not a domain, so `busybox` becomes
//! `docker.io/library/busybox:latest`, `user/app:v1` becomes `docker.io/user/app:v1`, and
//! `localhost:5000/x/y:t` keeps its domain. [`Reference::familiar`] gives the short form back.

use std::fmt;

/// The registry that names without a domain live on.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The repository prefix of official images on the default registry.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a name without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a string is not an image reference. The messages are docker's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Anything that does not match the grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part (after the domain) has upper-case letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// The name matches the grammar only once lower-cased (upper case in the domain position).
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// Empty name.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// Longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A bare 64-hex string, which would be ambiguous with an image ID.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// A digest whose algorithm berth does not know.
    #[error("unsupported digest algorithm")]
    UnsupportedDigest,
    /// A sha256 digest of the wrong length.
    #[error("invalid checksum digest length")]
    DigestLength,
}

/// A parsed, normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses like docker's `ParseNormalizedNamed` followed by `TagNameOnly`: a reference without
    /// tag or digest gets `:latest`. `busybox` → `docker.io/library/busybox:latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses like docker's `ParseNormalizedNamed`: normalises the domain and `library/` prefix but
    /// adds no default tag.
    pub fn parse_named(s: &str) -> Result<Reference, ReferenceError> {
        if crate::id::is_full_id(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        // docker checks (and names) only the part before the first ':' for case.
        let remote_name = remainder.split(':').next().unwrap_or("");
        if remote_name.to_lowercase() != remote_name {
            return Err(ReferenceError::Uppercase(remote_name.to_string()));
        }
        parse_full(&format!("{domain}/{remainder}"))
    }

    /// The registry domain, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::InvalidFormat);
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The short repository name docker shows: `busybox`, `user/app`, `localhost:5000/x/y`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The short form docker shows: `busybox:latest`, `user/app:v1`, `localhost:5000/x/y:t`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// docker's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            } else {
                (first.to_string(), name[i + 1..].to_string())
            }
        }
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// docker's `Parse` on a string that starts with a domain.
fn parse_full(s: &str) -> Result<Reference, ReferenceError> {
    let Some(r) = match_reference(s) else {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if match_reference(&s.to_lowercase()).is_some() {
            return Err(ReferenceError::NameContainsUppercase);
        }
        return Err(ReferenceError::InvalidFormat);
    };
    if r.name().len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(d) = &r.digest {
        let (algo, hex) = d.split_once(':').unwrap_or(("", ""));
        if algo != "sha256" {
            return Err(ReferenceError::UnsupportedDigest);
        }
        if hex.len() != 64 {
            return Err(ReferenceError::DigestLength);
        }
    }
    Ok(r)
}

/// Matches the anchored reference grammar with a mandatory domain; `None` if it does not match.
fn match_reference(s: &str) -> Option<Reference> {
    let (left, digest) = match s.split_once('@') {
        Some((l, d)) => {
            if !valid_digest(d) {
                return None;
            }
            (l, Some(d.to_string()))
        }
        None => (s, None),
    };
    let (name, tag) = match left.rfind(':') {
        Some(i) if !left[i + 1..].contains('/') => (&left[..i], Some(&left[i + 1..])),
        _ => (left, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return None;
        }
    }
    let (domain, path) = name.split_once('/')?;
    if !valid_domain(domain) || path.is_empty() || !path.split('/').all(valid_path_component) {
        return None;
    }
    Some(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest: digest.map(|d| d.to_lowercase()),
    })
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // [ipv6]:port
        let Some(end) = rest.find(']') else { return false };
        let ip = &rest[..end];
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match &rest[end + 1..] {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty() && host.split('.').all(valid_domain_component)
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn valid_digest(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
    });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    /// (input, normalised with default tag, familiar)
    const VALID: &[(&str, &str, &str)] = &[
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        (
            "library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/library/busybox:latest",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "index.docker.io/library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
        (
            "user/app/sub",
            "docker.io/user/app/sub:latest",
            "user/app/sub:latest",
        ),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        (
            "localhost:5000/x/y:t",
            "localhost:5000/x/y:t",
            "localhost:5000/x/y:t",
        ),
        (
            "quay.io/coreos/etcd:v3.5.0",
            "quay.io/coreos/etcd:v3.5.0",
            "quay.io/coreos/etcd:v3.5.0",
        ),
        (
            "Registry.Example.com/a",
            "Registry.Example.com/a:latest",
            "Registry.Example.com/a:latest",
        ),
        ("[::1]:5000/a/b", "[::1]:5000/a/b:latest", "[::1]:5000/a/b:latest"),
        (
            "a_b.c__d-e---f",
            "docker.io/library/a_b.c__d-e---f:latest",
            "a_b.c__d-e---f:latest",
        ),
        ("imp1:v1", "docker.io/library/imp1:v1", "imp1:v1"),
        ("t:V1_x.y-z", "docker.io/library/t:V1_x.y-z", "t:V1_x.y-z"),
    ];

    #[test]
    fn normalises_like_docker() {
        for (input, full, familiar) in VALID {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), *full, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            let again = Reference::parse(&r.to_string()).unwrap();
            assert_eq!(again, r, "{input} round trip");
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("x@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/x@{D}"));
        assert_eq!(r.familiar(), format!("x@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        let r = Reference::parse(&format!("localhost:5000/x:t@{D}")).unwrap();
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.familiar_name(), "localhost:5000/x");
        assert_eq!(
            Reference::parse("x@sha256:abc").unwrap_err().to_string(),
            "invalid reference format"
        );
        assert_eq!(
            Reference::parse("x@sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633c")
                .unwrap_err()
                .to_string(),
            "invalid checksum digest length"
        );
    }

    #[test]
    fn named_only_has_no_default_tag() {
        let r = Reference::parse_named("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), "busybox");
        assert_eq!(r.with_tag("v2").unwrap().familiar(), "busybox:v2");
    }

    #[test]
    fn invalid_references_use_docker_messages() {
        let cases: &[(&str, &str)] = &[
            (
                "UPPER",
                "invalid reference format: repository name (library/UPPER) must be lowercase",
            ),
            (
                "user/Upper:v1",
                "invalid reference format: repository name (user/Upper) must be lowercase",
            ),
            ("a:b:c", "invalid reference format"),
            (":tag", "invalid reference format"),
            ("", "invalid reference format"),
            ("a/", "invalid reference format"),
            ("a//b", "invalid reference format"),
            ("a..b", "invalid reference format"),
            ("a___b", "invalid reference format"),
            ("-a", "invalid reference format"),
            ("a-", "invalid reference format"),
            ("a:-tag", "invalid reference format"),
            ("a:", "invalid reference format"),
            ("a b", "invalid reference format"),
            ("localhost:x/a", "invalid reference format"),
            ("a@b", "invalid reference format"),
        ];
        for (input, msg) in cases {
            let err = Reference::parse(input).expect_err(input);
            assert_eq!(err.to_string(), *msg, "{input:?}");
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert_eq!(
            Reference::parse(&long_tag).unwrap_err(),
            ReferenceError::InvalidFormat
        );
        let long_name = format!("a/{}", "b".repeat(260));
        assert_eq!(
            Reference::parse(&long_name).unwrap_err(),
            ReferenceError::NameTooLong
        );
        let hex = "a".repeat(64);
        assert_eq!(
            Reference::parse(&hex).unwrap_err().to_string(),
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
    }
}
