//! Dependency direction, checked against the crate table in ARCHITECTURE.md (the source of
//! truth): every workspace crate depends — normal, build and dev dependencies alike — only on
//! berth crates of a strictly lower layer, and on none above what its row allows when the row
//! says "links only L0–Lk crates" or "links no berth crate" (either may add "except `x`, `y`":
//! those crates are allowed too, still only from a higher layer). Every workspace member has a row and
//! every row names a member, so the table cannot fall out of date silently.
//!
//! Needs no root and no daemon: `cargo metadata --no-deps` and the markdown file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One row of the table: the crate's layer, the highest layer it may link (`None`: no berth
/// crate at all), and crates it may link anyway ("except `x`").
#[derive(Debug, Clone, PartialEq)]
struct Row {
    layer: u32,
    may_link_up_to: Option<u32>,
    except: Vec<String>,
}

/// The crates named in backticks after "except" in a row's description.
fn exceptions(owns: &str) -> Vec<String> {
    let Some(rest) = owns.split(" except ").nth(1) else {
        return vec![];
    };
    let rest = rest.split(['.', ';', ')']).next().unwrap_or("");
    rest.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Parses `L3` / `L0–L1` style layer names.
fn layer_number(s: &str) -> Option<u32> {
    s.trim().strip_prefix('L')?.parse().ok()
}

/// The "links only L0–Lk crates" / "links no berth crate" restriction of a row's description.
fn restriction(owns: &str) -> Result<Option<Option<u32>>, String> {
    if owns.contains("links no berth crate") {
        return Ok(Some(None));
    }
    let Some(rest) = owns.split("links only ").nth(1) else {
        return Ok(None);
    };
    let range = rest.split_whitespace().next().unwrap_or("");
    let top = range.rsplit(['–', '-']).next().unwrap_or("");
    match layer_number(top) {
        Some(k) => Ok(Some(Some(k))),
        None => Err(format!("cannot read the layer range in \"links only {range}\"")),
    }
}

/// The `| layer | crate | owns |` rows of ARCHITECTURE.md's "## Crates" section.
fn parse_table(md: &str) -> Result<BTreeMap<String, Row>, String> {
    let section = md
        .split("\n## ")
        .find(|s| s.starts_with("Crates"))
        .ok_or("ARCHITECTURE.md has no \"## Crates\" section")?;
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(layer) = cells.first().and_then(|c| layer_number(c)) else {
            continue; // the header and the |---| line
        };
        if cells.len() < 3 {
            return Err(format!("table row has fewer than 3 cells: {line}"));
        }
        let name = cells[1]
            .split('`')
            .nth(1)
            .ok_or_else(|| format!("table row names no `crate`: {line}"))?;
        let may_link_up_to = match restriction(cells[2])? {
            Some(r) => r,
            None => layer.checked_sub(1),
        };
        let row = Row {
            layer,
            may_link_up_to: may_link_up_to.map(|k| k.min(layer.saturating_sub(1))),
            except: exceptions(cells[2]),
        };
        if rows.insert(name.to_string(), row).is_some() {
            return Err(format!("crate `{name}` has two rows in ARCHITECTURE.md"));
        }
    }
    if rows.is_empty() {
        return Err("ARCHITECTURE.md's crate table has no rows".into());
    }
    Ok(rows)
}

/// Whether a crate of `from` may depend on `to` at `to_layer`.
fn allowed(from: &Row, to: &str, to_layer: u32) -> bool {
    from.layer > 0
        && to_layer < from.layer
        && (from.may_link_up_to.is_some_and(|k| to_layer <= k) || from.except.iter().any(|e| e == to))
}

/// Workspace packages and, for each, its (dependency name, kind) pairs on other workspace packages.
fn workspace_edges() -> BTreeMap<String, Vec<(String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let ours: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("package name").to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter_map(|d| {
                    let name = d["name"].as_str()?.to_string();
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    ours.contains(&name).then_some((name, kind))
                })
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn layer_name(r: &Row) -> String {
    match r.may_link_up_to {
        None => "no berth crate".to_string(),
        Some(k) => format!("L0–L{k} only"),
    }
}

#[test]
fn every_crate_depends_only_on_crates_below_it_in_architecture_md() {
    let md = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let table = parse_table(&md).unwrap_or_else(|e| panic!("{e}"));
    let edges = workspace_edges();

    let mut problems = Vec::new();
    for name in edges.keys().filter(|n| !table.contains_key(*n)) {
        problems.push(format!(
            "workspace crate `{name}` has no row in ARCHITECTURE.md's crate table: give it a layer"
        ));
    }
    for name in table.keys().filter(|n| !edges.contains_key(*n)) {
        problems.push(format!(
            "ARCHITECTURE.md's crate table names `{name}`, which is not a workspace crate"
        ));
    }
    for (from, deps) in &edges {
        let Some(row) = table.get(from) else { continue };
        for (to, kind) in deps {
            let Some(to_row) = table.get(to) else { continue };
            if !allowed(row, to, to_row.layer) {
                problems.push(format!(
                    "layering violation: `{from}` (L{}, may link {}) has a {kind} dependency on `{to}` (L{}); \
                     a crate may depend only on crates below it in ARCHITECTURE.md",
                    row.layer,
                    layer_name(row),
                    to_row.layer
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_table_parser_reads_layers_and_link_restrictions() {
    let md = "# x\n\n## Crates\n| layer | crate | owns |\n|---|---|---|\n\
              | L0 | `a` | words |\n| L1 | `b` | more |\n| L2 | `c` (bin) | links only L0–L0 crates (`a`) |\n\
              | L2 | `t` (tests) | links no berth crate |\n| L3 | `u` (tests) | links no berth crate except `a`, `b`. |\n\n## Other\n| L9 | `z` | not in the table |\n";
    let t = parse_table(md).unwrap();
    assert_eq!(t.len(), 5);
    assert_eq!(
        t["a"],
        Row {
            layer: 0,
            may_link_up_to: None,
            except: vec![]
        }
    );
    assert_eq!(
        t["b"],
        Row {
            layer: 1,
            may_link_up_to: Some(0),
            except: vec![]
        }
    );
    assert_eq!(
        t["c"],
        Row {
            layer: 2,
            may_link_up_to: Some(0),
            except: vec![]
        }
    );
    assert_eq!(
        t["t"],
        Row {
            layer: 2,
            may_link_up_to: None,
            except: vec![]
        }
    );
    assert_eq!(t["u"].except, ["a", "b"]);
    assert!(allowed(&t["b"], "a", 0));
    assert!(!allowed(&t["b"], "b", 1), "same layer");
    assert!(!allowed(&t["a"], "a", 0), "L0 links nothing");
    assert!(!allowed(&t["c"], "b", 1), "restricted to L0");
    assert!(!allowed(&t["t"], "a", 0), "links no berth crate");
    assert!(allowed(&t["u"], "a", 0) && allowed(&t["u"], "b", 1), "excepted");
    assert!(!allowed(&t["u"], "t", 2), "not excepted");
    assert!(parse_table("## Crates\n| L1 | `b` | x |\n| L1 | `b` | x |\n").is_err());
}
