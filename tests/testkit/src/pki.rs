//! Keys and certificates made with `openssl` at test time: a CA, server certificates for an IP
//! or DNS name, client certificates, and the RSA key whose self-signed certificate a registry
//! trusts for token auth. Files live in a directory the caller owns (usually a fixture's temp dir).

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl missing: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate and its private key (PEM files).
#[derive(Debug, Clone)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test certificate authority in `dir`.
#[derive(Debug, Clone)]
pub struct Ca {
    dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    /// Makes a new CA (EC P-256, valid one day) named `name`, its files `<name>.crt`/`.key` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).unwrap();
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &crt,
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
            ],
            dir,
        );
        Ca {
            dir: dir.to_path_buf(),
            cert: dir.join(crt),
            key: dir.join(key),
        }
    }

    /// Issues a server certificate for `san` (an IP address or a DNS name).
    pub fn server(&self, name: &str, san: &str) -> CertKey {
        let san = if san.parse::<std::net::IpAddr>().is_ok() {
            format!("IP:{san}")
        } else {
            format!("DNS:{san}")
        };
        self.issue(
            name,
            &format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
        )
    }

    /// Issues a client certificate with common name `name`.
    pub fn client(&self, name: &str) -> CertKey {
        self.issue(name, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, name: &str, ext: &str) -> CertKey {
        let (crt, key, csr, extf) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(self.dir.join(&extf), ext).unwrap();
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
            &self.dir,
        );
        let (ca_crt, ca_key) = (self.cert.to_str().unwrap(), self.key.to_str().unwrap());
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                ca_crt,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "1",
                "-extfile",
                &extf,
            ],
            &self.dir,
        );
        CertKey {
            cert: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }
}

/// An RSA key and its self-signed certificate (for signing registry tokens, RS256), plus the
/// certificate's DER for the JWT `x5c` header.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: Vec<u8>,
}

impl SigningKey {
    pub fn new(dir: &Path) -> SigningKey {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "1",
                "-subj",
                "/CN=berth-testkit-token-signer",
            ],
            dir,
        );
        openssl(
            &["x509", "-in", "token.crt", "-outform", "DER", "-out", "token.der"],
            dir,
        );
        SigningKey {
            cert: dir.join("token.crt"),
            key: dir.join("token.key"),
            cert_der: std::fs::read(dir.join("token.der")).unwrap(),
        }
    }

    /// RS256 (PKCS#1 v1.5, SHA-256) signature of `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst -sign failed");
        out.stdout
    }
}
