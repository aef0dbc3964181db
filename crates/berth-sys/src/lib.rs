//! The one home of `unsafe` in berth. Every unsafe block carries a `// SAFETY:` comment saying why it
//! is sound. Prefer rustix's safe wrappers; drop to libc only where rustix has no API.

pub mod failpoint;
pub mod fd;
pub mod fs;
pub mod heap;
pub mod loopback;
pub mod mount;
pub mod netns;
pub mod nft;
pub mod process;
pub mod spawn;
pub mod times;
pub mod trash;
