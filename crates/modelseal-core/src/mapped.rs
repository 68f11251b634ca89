//! Read-only memory maps of one window of a file: the one place core uses `unsafe`.

use std::fs::File;
use std::io;

/// A mapped, read-only slice of a file, unmapped on drop (which also releases its pages
/// from our resident set, unlike a whole-file map). Pages are faulted in by the hashing
/// threads themselves: pre-faulting with `MAP_POPULATE` runs on one core while the
/// others wait, and measured 10% slower over a 2 GiB model.
pub(crate) struct Window {
    map: memmap2::Mmap,
}

impl Window {
    pub(crate) fn map(file: &File, offset: u64, len: u64) -> io::Result<Self> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("window too large"))?;
        // SAFETY: the map is read-only and private to this process. Another process may
        // still change the file underneath it; then we hash some mixture of old and new
        // bytes, which can only make a digest differ (the same trade `b3sum` and the
        // `blake3` crate's mmap helpers make). Truncation during the read raises SIGBUS,
        // which SECURITY.md lists as a known denial-of-service limit.
        #[allow(unsafe_code)]
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map(file)?
        };
        Ok(Self { map })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }
}
