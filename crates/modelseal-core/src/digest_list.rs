//! `sha256sum` lists, read as GNU coreutils' `sha256sum --check` reads them, for signing
//! from known digests (`spec/incremental.md` §5). What that reader would take another
//! way, or not at all, is refused rather than guessed.

use crate::path::ManifestPath;

/// A list larger than this is not read.
pub const MAX_LIST_BYTES: usize = 64 << 20;

/// Why a digest list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestListError {
    /// Too large.
    #[error("the list is larger than {MAX_LIST_BYTES} bytes")]
    TooLarge,
    /// Nothing listed.
    #[error("the list names no file")]
    Empty,
    /// A line that is not `HEX  NAME` or `HEX *NAME`.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Parses a `sha256sum` list: one `HEX  NAME` (text mode) or `HEX *NAME` (binary mode)
/// line per file; a line starting with `\` has `\\`, `\n` and `\r` escapes in its name.
/// Names may start with `./`. Returns the files in list order.
pub fn parse_sha256sum(text: &str) -> Result<Vec<(ManifestPath, [u8; 32])>, DigestListError> {
    if text.len() > MAX_LIST_BYTES {
        return Err(DigestListError::TooLarge);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Only '\n' ends a line: a '\r' before it would be part of the name to sha256sum.
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Err(DigestListError::Empty);
    }
    for (index, line) in body.split('\n').enumerate() {
        let fail = |why: &str| DigestListError::Line {
            line: index + 1,
            why: why.to_owned(),
        };
        let (escaped, rest) = match line.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if rest.starts_with("SHA256 (") || rest.starts_with("SHA256(") {
            return Err(fail(
                "a BSD-style (--tag) line; list with plain `sha256sum`",
            ));
        }
        let (hex, name) = rest
            .split_at_checked(64)
            .ok_or_else(|| fail("not `HEX  NAME`: shorter than a SHA-256 digest"))?;
        let mut digest = [0u8; 32];
        if !hex.bytes().all(|b| b.is_ascii_hexdigit())
            || hex::decode_to_slice(hex, &mut digest).is_err()
        {
            return Err(fail("the digest is not 64 hexadecimal digits"));
        }
        let name = name
            .strip_prefix("  ")
            .or_else(|| name.strip_prefix(" *"))
            .ok_or_else(|| fail("the digest is not followed by two spaces or ` *`"))?;
        let name = if escaped {
            unescape(name).ok_or_else(|| fail("an unknown backslash escape in the name"))?
        } else {
            name.to_owned()
        };
        if name.contains('\r') {
            return Err(fail(
                "a carriage return in the name (a list written with CRLF line ends?)",
            ));
        }
        let mut relative = name.as_str();
        while let Some(rest) = relative.strip_prefix("./") {
            relative = rest;
        }
        let path = ManifestPath::parse(relative)
            .map_err(|e| fail(&format!("{relative:?} is not a model-relative path: {e}")))?;
        if !seen.insert(path.clone()) {
            return Err(fail(&format!("{path} is listed twice")));
        }
        out.push((path, digest));
    }
    Ok(out)
}

/// `\\`, `\n` and `\r` as sha256sum writes them; `None` for any other escape.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn reads_text_binary_and_escaped_lines() {
        let text = format!("{H}  a.bin\n{H} *./sub/b c.json\n\\{H}  new\\nline\n");
        let parsed = parse_sha256sum(&text).unwrap();
        let names: Vec<String> = parsed.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(names, ["a.bin", "sub/b c.json", "new\nline"]);
        assert_eq!(hex::encode(parsed[0].1), H);
    }

    #[test]
    fn refuses_what_sha256sum_reads_otherwise() {
        let refused = [
            format!("{H} a.bin"),
            format!("{H}  a.bin\r\n"),
            format!("SHA256 (a.bin) = {H}"),
            format!("{}  a.bin", &H[..63]),
            format!("{H}  ../a.bin"),
            format!("{H}  /etc/passwd"),
            format!("{H}  a.bin\n{H}  ./a.bin"),
            format!("\\{H}  a\\tb"),
            format!("{H}  a.bin\n\n{H}  b.bin"),
            String::new(),
            "\n".to_owned(),
            format!("{}  a.bin", "g".repeat(64)),
            format!("+{}  a.bin", &H[1..]),
        ];
        for text in refused {
            assert!(parse_sha256sum(&text).is_err(), "accepted {text:?}");
        }
    }
}
