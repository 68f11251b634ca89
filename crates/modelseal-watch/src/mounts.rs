//! The mount table as it concerns the model: a filesystem mounted on a directory inside
//! the model (over an empty directory, say, holding a new `.py` file) sends no inotify
//! event and may leave every stamp as it was, and one mounted over a directory above it
//! replaces the whole model. `/proc/self/mountinfo` lists the mounts of this process's
//! mount namespace; the kernel marks it with `POLLPRI` on every mount and unmount.

use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};

/// The mount-table lines whose mount point is the model's path, inside it or above it,
/// sorted: two readings differ exactly when such a mount came, went or changed.
pub(crate) fn relevant(table: &str, model: &Path) -> Vec<String> {
    let mut lines: Vec<String> = table
        .lines()
        .filter(|line| {
            line.split(' ')
                .nth(4)
                .map(|point| PathBuf::from(unescape(point)))
                .is_some_and(|point| point.starts_with(model) || model.starts_with(&point))
        })
        .map(|line| {
            // The first two fields are the mount's ids, which a remount may not change;
            // the rest (root, mount point, options, source) says what is mounted where.
            line.split(' ').skip(2).collect::<Vec<_>>().join(" ")
        })
        .collect();
    lines.sort();
    lines
}

/// Reads the whole table again from its start (which also re-arms `POLLPRI`).
pub(crate) fn read(file: &mut std::fs::File) -> std::io::Result<String> {
    file.rewind()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// mountinfo escapes space, tab, newline and backslash as three octal digits.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /data rw shared:2 - ext4 /dev/sdb rw
31 30 0:26 / /data/models/m\\040one/empty rw - tmpfs tmpfs rw
32 22 0:27 / /proc rw - proc proc rw
33 30 0:28 / /data/models/other rw - tmpfs tmpfs rw
";

    #[test]
    fn mounts_inside_and_above_the_model_count_and_others_do_not() {
        let model = Path::new("/data/models/m one");
        let lines = relevant(TABLE, model);
        let mut points: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
        points.sort();
        assert_eq!(points, vec!["/", "/data", "/data/models/m\\040one/empty"]);
        // A mount beside the model, or elsewhere, changes nothing.
        let beside = format!("{TABLE}40 22 0:29 / /srv rw - tmpfs tmpfs rw\n");
        assert_eq!(relevant(&beside, model), lines);
        let inside = format!("{TABLE}41 31 0:30 / /data/models/m\\040one/sub rw - tmpfs t rw\n");
        assert_ne!(relevant(&inside, model), lines);
    }

    #[test]
    fn escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/a\\04"), "/a\\04");
        assert_eq!(unescape("/a\\999"), "/a\\999");
    }
}
