//! Links `berth-shim` as a static, position-dependent executable.
//!
//! A PIE has every pointer in `.data.rel.ro`/`.got` relocated by the loader at exec — for a
//! binary that embeds libcontainer that is several hundred KiB of private dirty memory in every
//! shim, before it does anything. Linked `-no-pie`, those pages need no relocation: they stay
//! clean, shared between all shims, and are only paged in where touched.
//!
//! Static, the shim also loads no shared libraries: the dynamic loader's ~0.8 ms at every
//! container start goes, and so do the libraries' relocated data, GOTs and the loader's own state,
//! ~85 kB of private memory in every shim (docs/design/shim.md, "A static executable"). The marker
//! asks the workspace's linker wrapper (scripts/berth-cc, set in .cargo/config.toml) for the static
//! link; linked without the wrapper, it only defines an unused symbol and the shim is dynamic.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-bins=-Wl,--defsym=berth_link_static=0");
}
