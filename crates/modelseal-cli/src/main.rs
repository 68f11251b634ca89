//! The `modelseal` binary: everything but the process setup is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(feature = "tpm")]
    if std::env::var_os("TSS2_LOG").is_none() {
        // tpm2-tss logs its own warnings to stderr; modelseal reports TPM errors in its
        // own words, so the library is quiet unless the user asks (TSS2_LOG=all+debug).
        // SAFETY: the first statement of main, before any thread exists.
        unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
    }
    ExitCode::from(modelseal_cli::run(std::env::args_os()))
}
