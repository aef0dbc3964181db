//! Compiles `init/init.c` into the static `docker-init` binary embedded as `INIT_BINARY`.
//! glibc's static libc (`libc6-dev`) is enough: `gcc -static -Os`, stripped.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("init/init.c");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("docker-init");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-static",
            "-Os",
            "-s",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fno-ident",
            "-Wl,--build-id=none",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("failed to run {cc} to build docker-init: {e}"));
    assert!(
        status.success(),
        "{cc} failed to build {} (static glibc needs libc6-dev)",
        src.display()
    );
}
