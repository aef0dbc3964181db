//! Proxy selection with Go's `httpproxy` rules, which dockerd uses: `https-proxy` for https
//! URLs, `http-proxy` for http URLs, nothing for hosts `no-proxy` matches, and never a proxy for
//! `localhost` or loopback addresses. daemon.json's `proxies` win over the environment
//! (`HTTP_PROXY`/`http_proxy`, `HTTPS_PROXY`/`https_proxy`, `NO_PROXY`/`no_proxy`).

use std::net::IpAddr;

/// daemon.json's `proxies`, or the environment's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// `http-proxy`: for http URLs.
    pub http_proxy: Option<String>,
    /// `https-proxy`: for https URLs (tunnelled with CONNECT).
    pub https_proxy: Option<String>,
    /// `no-proxy`: comma-separated hosts, `.domain` suffixes, IPs, CIDRs, `host:port`, `*`.
    pub no_proxy: Option<String>,
}

impl Proxies {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.http_proxy.as_deref().unwrap_or("").is_empty()
            && self.https_proxy.as_deref().unwrap_or("").is_empty()
    }

    /// From the process environment (upper case first, as Go; `HTTP_PROXY` is ignored under CGI).
    pub fn from_env() -> Proxies {
        Proxies::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Proxies {
        let var = |names: [&str; 2]| names.iter().find_map(|n| get(n).filter(|v| !v.is_empty()));
        let cgi = get("REQUEST_METHOD").is_some();
        Proxies {
            http_proxy: if cgi {
                None
            } else {
                var(["HTTP_PROXY", "http_proxy"])
            },
            https_proxy: var(["HTTPS_PROXY", "https_proxy"]),
            no_proxy: var(["NO_PROXY", "no_proxy"]),
        }
    }

    /// The proxy URL for a request to `scheme://host[:port]`, if any.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        let proxy = match scheme {
            "https" => self.https_proxy.as_deref(),
            "http" => self.http_proxy.as_deref(),
            _ => None,
        }?
        .trim();
        if proxy.is_empty() || !self.use_proxy(host, port) {
            return None;
        }
        Some(if proxy.contains("://") {
            proxy.to_string()
        } else {
            format!("http://{proxy}")
        })
    }

    fn use_proxy(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host == "localhost" {
            return false;
        }
        let ip: Option<IpAddr> = host.parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        for entry in self.no_proxy.as_deref().unwrap_or("").split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                return false;
            }
            if entry.contains('/') {
                if ip.is_some_and(|ip| crate::hosts::in_cidr(ip, &entry)) {
                    return false;
                }
                continue;
            }
            if let Ok(e) = entry.parse::<IpAddr>() {
                if ip == Some(e) {
                    return false;
                }
                continue;
            }
            // host[:port], .suffix, *.suffix
            let (name, eport) = match entry.rsplit_once(':') {
                Some((n, p)) if p.parse::<u16>().is_ok() => (n.to_string(), p.parse::<u16>().ok()),
                _ => (entry.clone(), None),
            };
            if eport.is_some_and(|p| p != port) {
                continue;
            }
            if let Ok(e) = name.parse::<IpAddr>() {
                if ip == Some(e) {
                    return false;
                }
                continue;
            }
            let name = name.trim_start_matches('*');
            if let Some(suffix) = name.strip_prefix('.') {
                if host.ends_with(&format!(".{suffix}")) {
                    return false;
                }
            } else if host == name || host.ends_with(&format!(".{name}")) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_rules_choose_the_proxy() {
        let p = Proxies {
            http_proxy: Some("127.0.0.1:3128".into()),
            https_proxy: Some("http://proxy.example:3129".into()),
            no_proxy: Some("internal.example, .corp.example,10.1.0.0/16,192.0.2.7,reg.example:5000".into()),
        };
        assert_eq!(
            p.proxy_for("http", "x.example", 80).as_deref(),
            Some("http://127.0.0.1:3128")
        );
        assert_eq!(
            p.proxy_for("https", "x.example", 443).as_deref(),
            Some("http://proxy.example:3129")
        );
        for (host, port) in [
            ("localhost", 5000),
            ("127.0.0.1", 5000),
            ("::1", 5000),
            ("internal.example", 443),
            ("a.internal.example", 443),
            ("b.corp.example", 443),
            ("10.1.2.3", 443),
            ("192.0.2.7", 443),
            ("reg.example", 5000),
        ] {
            assert_eq!(p.proxy_for("https", host, port), None, "{host}:{port}");
        }
        assert!(
            p.proxy_for("https", "corp.example", 443).is_some(),
            ".corp.example is a suffix only"
        );
        assert!(
            p.proxy_for("https", "reg.example", 443).is_some(),
            "port-specific no-proxy entry"
        );
        let all = Proxies {
            no_proxy: Some("*".into()),
            ..p.clone()
        };
        assert_eq!(all.proxy_for("https", "x.example", 443), None);
    }

    #[test]
    fn the_environment_is_read_upper_case_first() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://a:1".to_string()),
            "https_proxy" => Some("http://b:1".to_string()),
            "http_proxy" => Some("http://c:1".to_string()),
            "no_proxy" => Some("x".to_string()),
            _ => None,
        };
        let p = Proxies::from_lookup(env);
        assert_eq!(p.https_proxy.as_deref(), Some("http://a:1"));
        assert_eq!(p.http_proxy.as_deref(), Some("http://c:1"));
        assert_eq!(p.no_proxy.as_deref(), Some("x"));
        let cgi = Proxies::from_lookup(|k| {
            if k == "REQUEST_METHOD" {
                Some("GET".into())
            } else {
                env(k)
            }
        });
        assert_eq!(cgi.http_proxy, None, "HTTP_PROXY is ignored under CGI");
    }
}
