//! Links `berth-shim` as a position-dependent executable.
//!
//! A PIE has every pointer in `.data.rel.ro`/`.got` relocated by the loader at exec — for a
//! binary that embeds libcontainer that is several hundred KiB of private dirty memory in every
//! shim, before it does anything. Linked `-no-pie`, those pages need no relocation: they stay
//! clean, shared between all shims, and are only paged in where touched.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
