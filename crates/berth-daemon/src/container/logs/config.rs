//! `HostConfig.LogConfig`: checked at create as dockerd checks it, and turned into the shim's
//! [`LogConfig`] at start.
//!
//! Drivers: `json-file` (the default), `local` and `none`; any other name is dockerd's
//! `logger: no log driver named 'x' is registered` (400). Options are checked like dockerd's
//! validators (the option names first, then their values — dockerd checks the values only when
//! the container starts; berth refuses them at create, so no container is left behind):
//! - common: `mode` (`blocking`; `non-blocking` would drop output, which berth never does),
//!   `max-buffer-size` (only with `mode=non-blocking`);
//! - json-file: `max-size` (go-units, > 0; no limit when absent), `max-file` (>= 1, default 1),
//!   `compress` (needs `max-file` >= 2 and `max-size`);
//! - local: `max-size` (default 20 MiB), `max-file` (default 5), `compress` (default true; needs
//!   `max-file` >= 2).
//!
//! The attribute options Docker also knows (`labels`, `env`, `tag`, …) are refused with a message
//! saying berth does not support them, rather than accepted and ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth_api::models::HostConfigLogConfig;
use berth_shim_proto::{LogConfig, LogDriver};

use crate::container::Doc;
use crate::error::{Error, Result};

/// Options Docker's drivers know that add attributes to records; berth keeps no attributes.
const ATTRIBUTE_OPTS: &[&str] = &["labels", "labels-regex", "env", "env-regex", "tag"];

/// Completes (the default driver is json-file) and checks a create request's log config. The
/// options are kept as given, for inspect.
pub(crate) fn verify(lc: Option<HostConfigLogConfig>) -> Result<HostConfigLogConfig> {
    let lc = lc.unwrap_or_default();
    let typ = lc
        .typ
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| LogDriver::JsonFile.as_str().to_string());
    let config = lc.config.unwrap_or_default();
    parse(&typ, &config)?;
    Ok(HostConfigLogConfig {
        typ: Some(typ),
        config: Some(config),
    })
}

/// The shim's log configuration for a container (records made before log options existed, or
/// with a config that no longer parses, get json-file unrotated).
pub(crate) fn of_doc(doc: &Doc) -> LogConfig {
    let Some(lc) = &doc.host_config.log_config else {
        return LogConfig::default();
    };
    let typ = lc.typ.as_deref().filter(|t| !t.is_empty()).unwrap_or("json-file");
    parse(typ, &lc.config.clone().unwrap_or_default()).unwrap_or_default()
}

/// The current log file of a container, or `None` for the `none` driver.
pub(crate) fn log_path(bundle: &Path, id: &str, driver: LogDriver) -> Option<PathBuf> {
    match driver {
        LogDriver::JsonFile => Some(bundle.join(format!("{id}-json.log"))),
        LogDriver::Local => Some(bundle.join("local-logs").join("container.log")),
        LogDriver::None => None,
    }
}

/// Go's `strconv.Atoi`.
fn atoi(v: &str) -> std::result::Result<i64, String> {
    v.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
}

/// Checks `typ` and `opts` and gives the shim's configuration.
pub(crate) fn parse(typ: &str, opts: &HashMap<String, String>) -> Result<LogConfig> {
    if typ == "none" {
        return Ok(LogConfig {
            driver: LogDriver::None,
            ..LogConfig::default()
        });
    }
    let mode = opts.get("mode").map(String::as_str).unwrap_or("");
    match mode {
        "" | "blocking" => {}
        "non-blocking" => {
            return Err(Error::invalid(
                "logger: mode non-blocking is not supported by berth: it never drops output (the container waits for its log)",
            ))
        }
        m => return Err(Error::invalid(format!("logger: logging mode not supported: {m}"))),
    }
    if opts.contains_key("max-buffer-size") {
        return Err(Error::invalid(
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
        ));
    }
    let driver = match typ {
        "json-file" => LogDriver::JsonFile,
        "local" => LogDriver::Local,
        other => {
            return Err(Error::invalid(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    };
    let mut keys: Vec<&str> = opts
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "mode" && *k != "max-buffer-size")
        .collect();
    keys.sort_unstable();
    for k in keys {
        match k {
            "max-size" | "max-file" | "compress" => {}
            k if ATTRIBUTE_OPTS.contains(&k) => {
                return Err(Error::invalid(format!(
                    "log opt '{k}' of the {typ} log driver is not supported by berth (it keeps no log attributes)"
                )))
            }
            k if driver == LogDriver::JsonFile => {
                return Err(Error::invalid(format!("unknown log opt '{k}' for json-file log driver")))
            }
            k => return Err(Error::invalid(format!("unknown log opt '{k}' for log driver local"))),
        }
    }
    let get = |k: &str| opts.get(k).map(String::as_str);
    // Values are read when dockerd makes the logger, at start: its errors carry that step's
    // prefix (the keys were checked above, at create).
    let invalid =
        |m: &dyn std::fmt::Display| Error::invalid(format!("failed to initialize logging driver: {m}"));
    if driver == LogDriver::JsonFile {
        let max_size = match get("max-size") {
            None => 0,
            Some(v) => {
                let n = berth_types::units::from_human_size(v).map_err(|e| invalid(&e))?;
                if n <= 0 {
                    return Err(invalid(&"max-size must be a positive number"));
                }
                n as u64
            }
        };
        let max_file = match get("max-file") {
            None => 1,
            Some(v) => {
                let n = atoi(v).map_err(|e| invalid(&e))?;
                if n < 1 {
                    return Err(invalid(&"max-file cannot be less than 1"));
                }
                n
            }
        };
        let compress = get("compress")
            .map(berth_api::parse_go_bool)
            .transpose()
            .map_err(|e| invalid(&e))?
            .unwrap_or(false);
        if compress && (max_file == 1 || max_size == 0) {
            return Err(invalid(
                &"compress cannot be true when max-file is less than 2 or max-size is not set",
            ));
        }
        return Ok(LogConfig {
            driver,
            max_size,
            max_file: max_file.min(u32::MAX as i64) as u32,
            compress,
        });
    }
    let max_size = match get("max-size") {
        None => 20 * 1024 * 1024,
        // Docker's local driver with max-size 0 rotates before every entry.
        Some(v) => berth_types::units::from_human_size(v)
            .map_err(|e| invalid(&format!("invalid value for max-size: {v}: {e}")))?
            .max(1) as u64,
    };
    let max_file = match get("max-file") {
        None => 5,
        Some(v) => atoi(v).map_err(|e| invalid(&format!("invalid value for max-file: {v}: {e}")))?,
    };
    if max_file < 0 {
        return Err(invalid(&"max file count cannot be less than 0"));
    }
    let compress = match get("compress") {
        None => true,
        Some(v) => berth_api::parse_go_bool(v)
            .map_err(|e| invalid(&format!("error reading compress log option: {e}")))?,
    };
    if compress && max_file <= 1 {
        return Err(invalid(&"compression cannot be enabled when max file count is 1"));
    }
    Ok(LogConfig {
        driver,
        max_size,
        max_file: max_file.min(u32::MAX as i64) as u32,
        compress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(typ: &str, kv: &[(&str, &str)]) -> Result<LogConfig> {
        parse(
            typ,
            &kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        )
    }

    fn msg(r: Result<LogConfig>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), berth_types::ErrorKind::InvalidArgument);
        e.to_string()
    }

    #[test]
    fn json_file_options_parse_like_dockers() {
        assert_eq!(p("json-file", &[]).unwrap(), LogConfig::default());
        let c = p(
            "json-file",
            &[("max-size", "10k"), ("max-file", "3"), ("compress", "true")],
        )
        .unwrap();
        assert_eq!((c.max_size, c.max_file, c.compress), (10_000, 3, true));
        assert_eq!(
            msg(p("json-file", &[("max-size", "10x")])),
            "failed to initialize logging driver: invalid size: '10x'"
        );
        assert_eq!(
            msg(p("json-file", &[("max-size", "0")])),
            "failed to initialize logging driver: max-size must be a positive number"
        );
        assert_eq!(
            msg(p("json-file", &[("max-file", "0")])),
            "failed to initialize logging driver: max-file cannot be less than 1"
        );
        assert_eq!(
            msg(p("json-file", &[("max-file", "x")])),
            "failed to initialize logging driver: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            msg(p("json-file", &[("compress", "true"), ("max-file", "2")])),
            "failed to initialize logging driver: compress cannot be true when max-file is less than 2 or max-size is not set"
        );
        assert_eq!(
            msg(p("json-file", &[("max-sise", "1m")])),
            "unknown log opt 'max-sise' for json-file log driver"
        );
        assert!(msg(p("json-file", &[("tag", "x")])).contains("not supported by berth"));
    }

    #[test]
    fn local_has_dockers_defaults() {
        let c = p("local", &[]).unwrap();
        assert_eq!(c.driver, LogDriver::Local);
        assert_eq!((c.max_size, c.max_file, c.compress), (20 * 1024 * 1024, 5, true));
        assert_eq!(
            msg(p("local", &[("max-file", "1")])),
            "failed to initialize logging driver: compression cannot be enabled when max file count is 1"
        );
        assert_eq!(
            p("local", &[("max-file", "1"), ("compress", "false")])
                .unwrap()
                .max_file,
            1
        );
        assert_eq!(
            msg(p("local", &[("x", "1")])),
            "unknown log opt 'x' for log driver local"
        );
        assert_eq!(
            msg(p("local", &[("max-size", "big")])),
            "failed to initialize logging driver: invalid value for max-size: big: invalid size: 'big'"
        );
    }

    #[test]
    fn unknown_driver_is_dockers_error_and_none_takes_anything() {
        assert_eq!(
            msg(p("syslogg", &[])),
            "logger: no log driver named 'syslogg' is registered"
        );
        assert_eq!(p("none", &[("whatever", "1")]).unwrap().driver, LogDriver::None);
        assert_eq!(
            msg(p("json-file", &[("mode", "fast")])),
            "logger: logging mode not supported: fast"
        );
        assert!(p("json-file", &[("mode", "blocking")]).is_ok());
    }

    #[test]
    fn verify_defaults_to_json_file_and_keeps_options() {
        let lc = verify(None).unwrap();
        assert_eq!(lc.typ.as_deref(), Some("json-file"));
        assert_eq!(lc.config, Some(HashMap::new()));
        let given = HostConfigLogConfig {
            typ: Some("local".into()),
            config: Some([("max-file".to_string(), "3".to_string())].into()),
        };
        assert_eq!(verify(Some(given.clone())).unwrap(), given);
    }
}
