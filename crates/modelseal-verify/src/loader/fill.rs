//! Whole-file and ranged reads verified as they fill the caller's buffer: BLAKE3 trees
//! (from the manifest's roots or the outboards), OMS file and shard digests.

use super::*;

/// Reads at least this large get a read-ahead hint for their whole span.
pub(super) const READAHEAD_FROM: usize = 8 << 20;

/// One open signed file being read.
pub(super) struct Fill<'a> {
    pub(super) path: &'a str,
    pub(super) size: u64,
    pub(super) handle: &'a std::fs::File,
}

impl Fill<'_> {
    pub(super) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        read_exact_into(self.handle, self.path, offset, buf)
    }

    pub(super) fn tampered(&self, offset: u64) -> ReadError {
        ReadError::Tampered {
            path: self.path.to_owned(),
            offset,
        }
    }
}

/// A span-filling verifier: reads `buf.len()` bytes at a piece-aligned offset into
/// `buf` and verifies them (the span ends on a piece boundary or at the end of file).
pub(super) type FillSpan<'a> = dyn Fn(u64, &mut [u8]) -> Result<(), ReadError> + Sync + 'a;

/// Reads `start..start + buf.len()` into `buf` through `fill`, which verifies whole
/// `piece`-aligned spans: the aligned middle is filled in place, the partial pieces at
/// either edge through scratch.
pub(super) fn read_pieces(
    ctx: &Fill<'_>,
    piece: u64,
    start: u64,
    buf: &mut [u8],
    fill: &FillSpan<'_>,
) -> Result<(), ReadError> {
    let end = start + buf.len() as u64;
    let floor = |x: u64| x / piece * piece;
    let piece_end = |at: u64| (at + piece).min(ctx.size);
    let inner_start = if start.is_multiple_of(piece) {
        start
    } else {
        floor(start) + piece
    };
    let inner_end = if end == ctx.size { end } else { floor(end) };
    if inner_start < inner_end {
        let from = (inner_start - start) as usize;
        let to = (inner_end - start) as usize;
        fill(inner_start, &mut buf[from..to])?;
    }
    let mut edges = vec![floor(start)];
    if floor(end.saturating_sub(1)) != floor(start) {
        edges.push(floor(end - 1));
    }
    for at in edges {
        let span = at..piece_end(at);
        if inner_start <= span.start && span.end <= inner_end {
            continue;
        }
        let mut scratch = vec![0u8; (span.end - span.start) as usize];
        fill(span.start, &mut scratch)?;
        let lo = start.max(span.start);
        let hi = end.min(span.end);
        buf[(lo - start) as usize..(hi - start) as usize]
            .copy_from_slice(&scratch[(lo - span.start) as usize..(hi - span.start) as usize]);
    }
    Ok(())
}

/// Pieces a whole-file BLAKE3 read is cut into: a power of two of 1 KiB chunks, so that
/// each piece is a subtree of the file's BLAKE3 tree and can be hashed on its own.
pub(super) const TREE_PIECE: u64 = 4 << 20;

/// Reads the whole file into `all` and checks its BLAKE3 against `root`. The pieces are
/// read and hashed on every core (each core reads a piece, then hashes it), and their
/// chaining values merged into the root: no outboard is needed, no byte is read twice.
pub(super) fn fill_blake3(
    ctx: &Fill<'_>,
    root: &[u8; 32],
    all: &mut [u8],
) -> Result<(), ReadError> {
    use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
    if all.len() as u64 <= TREE_PIECE {
        ctx.read(0, all)?;
        return if blake3::hash(all).as_bytes() == root {
            Ok(())
        } else {
            Err(ctx.tampered(0))
        };
    }
    let cvs: Vec<blake3::hazmat::ChainingValue> =
        in_file_order(all, TREE_PIECE as usize, &|i, piece| {
            let at = i as u64 * TREE_PIECE;
            ctx.read(at, piece)?;
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(at);
            hasher.update(piece);
            Ok(hasher.finalize_non_root())
        })?;
    // Merge as BLAKE3's tree does: a node of `len` bytes splits at its left subtree's
    // length, always a multiple of the piece size here.
    fn node(
        cvs: &[blake3::hazmat::ChainingValue],
        offset: u64,
        len: u64,
    ) -> blake3::hazmat::ChainingValue {
        if len <= TREE_PIECE {
            return cvs[(offset / TREE_PIECE) as usize];
        }
        let left = blake3::hazmat::left_subtree_len(len);
        merge_subtrees_non_root(
            &node(cvs, offset, left),
            &node(cvs, offset + left, len - left),
            Mode::Hash,
        )
    }
    let len = all.len() as u64;
    let left = blake3::hazmat::left_subtree_len(len);
    let computed = merge_subtrees_root(
        &node(&cvs, 0, left),
        &node(&cvs, left, len - left),
        Mode::Hash,
    );
    if computed.as_bytes() == root {
        Ok(())
    } else {
        Err(ctx.tampered(0))
    }
}

/// Reads `buf.len()` bytes at `offset` into `buf` and checks one sequential digest over
/// them. Reading piece `i + 1` overlaps hashing piece `i`, so the check costs little
/// more than the slower of the two.
pub(super) fn fill_digest(
    ctx: &Fill<'_>,
    hash: OmsHash,
    offset: u64,
    buf: &mut [u8],
    expected: &[u8],
) -> Result<(), ReadError> {
    const PIECE: usize = 8 << 20;
    let mut digester = Digester::new(hash.algorithm());
    let (mut done, mut rest) = buf.split_at_mut(0);
    let mut at = offset;
    while !rest.is_empty() || !done.is_empty() {
        let take = rest.len().min(PIECE);
        let (next, after) = rest.split_at_mut(take);
        let (read, ()) = rayon::join(|| ctx.read(at, next), || digester.update(done));
        read?;
        at += take as u64;
        done = next;
        rest = after;
    }
    if digester.finalize() == expected {
        Ok(())
    } else {
        Err(ctx.tampered(offset))
    }
}

/// Reads and checks the whole shards `span` covers, from shard-aligned `at`: shards on
/// every core, each read and hashed as [`fill_digest`] does.
pub(super) fn fill_shards(
    ctx: &Fill<'_>,
    hash: OmsHash,
    size: u64,
    digests: &[Vec<u8>],
    at: u64,
    span: &mut [u8],
) -> Result<(), ReadError> {
    let first = (at / size) as usize;
    in_file_order(span, size as usize, &|i, shard| {
        let index = first + i;
        let expected = digests
            .get(index)
            .ok_or_else(|| ctx.tampered(index as u64 * size))?;
        fill_digest(ctx, hash, index as u64 * size, shard, expected)
    })
    .map(|_| ())
}

/// Reads `span` (from `start`, a group boundary) and verifies it through the outboard,
/// from the signed root down. Large spans are cut into group-aligned pieces, each read
/// and checked on one core, so reading and hashing overlap across cores; each piece is
/// checked from the root, so together they prove exactly what one check would.
pub(super) fn fill_outboard(
    ctx: &Fill<'_>,
    root: &[u8; 32],
    outboard: &std::fs::File,
    start: u64,
    span: &mut [u8],
) -> Result<(), ReadError> {
    const PIECE: usize = 4 << 20; // a multiple of the 64 KiB group
    in_file_order(span, PIECE, &|i, piece| {
        let at = start + (i * PIECE) as u64;
        ctx.read(at, piece)?;
        check_piece(ctx.path, ctx.size, root, outboard, at, piece)
    })
    .map(|_| ())
}

/// What [`in_file_order`] runs on each piece: its index, its bytes.
pub(super) type PieceWork<'a, R> = dyn Fn(usize, &mut [u8]) -> Result<R, ReadError> + Sync + 'a;

/// Runs `work` on every `piece`-byte piece of `buf` (with its index) on every core,
/// the pieces taken in file order (each core takes the next one), so that the reads
/// form one stream a cold disk can serve sequentially rather than one stream per core
/// from distant offsets. Results come back by index; the first failure by offset wins,
/// so the report does not depend on thread timing.
pub(super) fn in_file_order<R: Send>(
    buf: &mut [u8],
    piece: usize,
    work: &PieceWork<'_, R>,
) -> Result<Vec<R>, ReadError> {
    let count = buf.len().div_ceil(piece.max(1));
    let pieces = Mutex::new(buf.chunks_mut(piece.max(1)).enumerate());
    let done = Mutex::new(Vec::with_capacity(count));
    let workers = rayon::current_num_threads().clamp(1, count.max(1));
    rayon::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|_| {
                loop {
                    let next = pieces.lock().unwrap_or_else(|p| p.into_inner()).next();
                    let Some((index, piece)) = next else { break };
                    let result = work(index, piece);
                    done.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Verifies `data`, the file's bytes from `start` (a group boundary), against the
/// signed `root` through the outboard: each 64 KiB group's chaining value is computed
/// in place (`blake3::hazmat`, no copy), then the tree is walked from the root down to
/// those groups, every hash pair read from the outboard checked against its parent
/// before it is trusted. A pair that does not lead to its parent is `Outboard`; a group
/// whose bytes do not lead to its pair is `Tampered`.
pub(super) fn check_piece(
    path: &str,
    size: u64,
    root: &[u8; 32],
    outboard: &std::fs::File,
    start: u64,
    data: &[u8],
) -> Result<(), ReadError> {
    use blake3::hazmat::HasherExt as _;
    if data.is_empty() {
        return Ok(());
    }
    let cvs = data
        .chunks(BLOCK_BYTES as usize)
        .enumerate()
        .map(|(i, group)| {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(start + i as u64 * BLOCK_BYTES);
            hasher.update(group);
            hasher.finalize_non_root()
        })
        .collect();
    let walk = TreeWalk {
        path,
        outboard,
        span: start..start + data.len() as u64,
        cvs,
    };
    walk.node(0, size, 0, Expected::Root(root), None)
}

/// What a node's hash must be: the signed root, or the chaining value its parent's
/// (already checked) pair names.
pub(super) enum Expected<'a> {
    Root(&'a [u8; 32]),
    Node(blake3::hazmat::ChainingValue),
}

/// A walk of a file's BLAKE3 tree, at 64 KiB group level, down to the groups of `span`.
/// The outboard holds the (left, right) pair of every inner node in pre-order, so a
/// node's left child is the next pair and its right child follows the left subtree's
/// `groups - 1` pairs.
pub(super) struct TreeWalk<'a> {
    path: &'a str,
    outboard: &'a std::fs::File,
    span: Range<u64>,
    cvs: Vec<blake3::hazmat::ChainingValue>,
}

impl TreeWalk<'_> {
    fn node(
        &self,
        offset: u64,
        len: u64,
        index: u64,
        expected: Expected<'_>,
        loaded: Option<(u64, &[u8])>,
    ) -> Result<(), ReadError> {
        use blake3::hazmat::{
            Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
        };
        if len <= BLOCK_BYTES {
            let cv = self.cvs[((offset - self.span.start) / BLOCK_BYTES) as usize];
            return match expected {
                Expected::Node(want) if want == cv => Ok(()),
                _ => Err(ReadError::Tampered {
                    path: self.path.to_owned(),
                    offset,
                }),
            };
        }
        // A subtree wholly inside the span needs every one of its pairs: one read.
        let owned;
        let loaded = match loaded {
            None if self.span.start <= offset && offset + len <= self.span.end => {
                owned = self.read_pairs(index, len.div_ceil(BLOCK_BYTES) - 1)?;
                Some((index, owned.as_slice()))
            }
            other => other,
        };
        let pair = match loaded {
            Some((first, pairs)) => {
                let at = ((index - first) * 64) as usize;
                pairs[at..at + 64].to_vec()
            }
            None => self.read_pairs(index, 1)?,
        };
        let left: [u8; 32] = pair[..32].try_into().expect("32 bytes");
        let right: [u8; 32] = pair[32..].try_into().expect("32 bytes");
        let leads_to_parent = match expected {
            Expected::Root(root) => {
                merge_subtrees_root(&left, &right, Mode::Hash).as_bytes() == root
            }
            Expected::Node(cv) => merge_subtrees_non_root(&left, &right, Mode::Hash) == cv,
        };
        if !leads_to_parent {
            return Err(ReadError::Outboard {
                path: self.path.to_owned(),
            });
        }
        let split = left_subtree_len(len);
        let overlaps = |from: u64, to: u64| from < self.span.end && self.span.start < to;
        if overlaps(offset, offset + split) {
            self.node(offset, split, index + 1, Expected::Node(left), loaded)?;
        }
        if overlaps(offset + split, offset + len) {
            let right_index = index + split.div_ceil(BLOCK_BYTES);
            self.node(
                offset + split,
                len - split,
                right_index,
                Expected::Node(right),
                loaded,
            )?;
        }
        Ok(())
    }

    fn read_pairs(&self, index: u64, count: u64) -> Result<Vec<u8>, ReadError> {
        use std::os::unix::fs::FileExt as _;
        let mut pairs = vec![0u8; (count * 64) as usize];
        self.outboard
            .read_exact_at(&mut pairs, index * 64)
            .map_err(|_| ReadError::Outboard {
                path: self.path.to_owned(),
            })?;
        Ok(pairs)
    }
}

pub(super) fn read_exact_into(
    handle: &std::fs::File,
    path: &str,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ReadError> {
    use std::os::unix::fs::FileExt;
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    handle.read_exact_at(buf, offset).map_err(io)
}
