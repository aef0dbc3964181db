//! nftables through libnftables (Debian's `libnftables1`), in process: berth hands it batches of
//! nft commands, the same language `nft -f` reads, and no `nft` program runs per container.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

#[link(name = "nftables")]
extern "C" {
    fn nft_ctx_new(flags: c_uint) -> *mut c_void;
    fn nft_ctx_free(ctx: *mut c_void);
    fn nft_ctx_buffer_output(ctx: *mut c_void) -> c_int;
    fn nft_ctx_buffer_error(ctx: *mut c_void) -> c_int;
    fn nft_ctx_get_output_buffer(ctx: *mut c_void) -> *const c_char;
    fn nft_ctx_get_error_buffer(ctx: *mut c_void) -> *const c_char;
    fn nft_run_cmd_from_buffer(ctx: *mut c_void, buf: *const c_char) -> c_int;
    fn nft_ctx_output_set_flags(ctx: *mut c_void, flags: c_uint);
}

/// `NFT_CTX_OUTPUT_HANDLE`: listings show `# handle N` (libnftables.h).
const OUTPUT_HANDLE: c_uint = 1 << 3;

/// A failed batch: nft's own message (the batch is applied atomically, so nothing of it is in).
#[derive(Debug, thiserror::Error)]
#[error("nftables: {0}")]
pub struct NftError(pub String);

/// Runs a batch of nft commands (one transaction) and returns what nft printed (for `list`).
pub fn run(cmds: &str) -> Result<String, NftError> {
    run_with(cmds, 0)
}

/// [`run`], with rule handles in listings (`# handle N`), for deleting single rules.
pub fn run_with_handles(cmds: &str) -> Result<String, NftError> {
    run_with(cmds, OUTPUT_HANDLE)
}

fn run_with(cmds: &str, output_flags: c_uint) -> Result<String, NftError> {
    let buf = CString::new(cmds).map_err(|_| NftError("NUL in command batch".into()))?;
    // SAFETY: nft_ctx_new has no preconditions; NFT_CTX_DEFAULT is 0. A null return is checked.
    let ctx = unsafe { nft_ctx_new(0) };
    if ctx.is_null() {
        return Err(NftError("cannot allocate an nftables context".into()));
    }
    // SAFETY: `ctx` is a live context owned here; the buffers it returns are NUL-terminated
    // strings owned by the context, copied out before `nft_ctx_free`, which is called once.
    unsafe {
        if output_flags != 0 {
            nft_ctx_output_set_flags(ctx, output_flags);
        }
        nft_ctx_buffer_output(ctx);
        nft_ctx_buffer_error(ctx);
        let rc = nft_run_cmd_from_buffer(ctx, buf.as_ptr());
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let out = text(nft_ctx_get_output_buffer(ctx));
        let err = text(nft_ctx_get_error_buffer(ctx));
        nft_ctx_free(ctx);
        if rc != 0 {
            return Err(NftError(err.trim().to_string()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_syntax_error_comes_back_as_nfts_message() {
        let e = super::run("add tabel ip x\n").unwrap_err();
        assert!(e.0.contains("syntax error") || e.0.contains("Error"), "{e}");
    }
}
