//! Links the `berth` CLI as a static, position-dependent executable, as berth-shim is (see
//! crates/berth-shim/build.rs and scripts/berth-cc): every command is a new process, and the
//! dynamic loader's work at each start (mapping libc and libgcc_s, relocating a PIE) is time a
//! user waits for on every `run`, `exec` and `ps` (docs/design/performance.md, "The CLI's start").
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-bins=-Wl,--defsym=berth_link_static=0");
}
