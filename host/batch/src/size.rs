//! Sizes as people write them, for every flag and job-file key that takes one: `20MB`, `64MiB`,
//! `1.5 GiB`, `4096`.

use bytesize::ByteSize;

/// Parses a byte count: a number (a fraction allowed) with an optional unit, decimal `KB`, `MB`,
/// `GB`, `TB` (powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), any case,
/// with or without a space; no unit, or `B`, means bytes. The error says what was given and what
/// would do.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size (e.g. 4096, 20MB, 64MiB, 1.5GiB)");
    let trimmed = text.trim();
    if !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    match trimmed.parse::<ByteSize>() {
        // The crate saturates on overflow.
        Ok(size) if size.as_u64() == u64::MAX => Err(format!("{text:?} is too large a size")),
        Ok(size) => Ok(size.as_u64()),
        Err(_) => Err(bad()),
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A byte count for people: in the largest binary unit that divides it exactly (`64 MiB`,
/// `1000 B`), so the text says exactly the number that was given.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("20MB"), Ok(20_000_000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("64MiB"), Ok(64 * MIB));
        assert_eq!(parse_size("512 KiB"), Ok(512 * KIB));
        assert_eq!(parse_size("4GiB"), Ok(4 * GIB));
        assert_eq!(parse_size("4 kb"), Ok(4_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * GIB / 2));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("7B"), Ok(7));
        for bad in [
            "",
            "MB",
            "-1",
            "1e3",
            "12 parsecs",
            "99999999999999GiB",
            " x1",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_size(64 * MIB), "64 MiB");
        assert_eq!(format_size(GIB), "1 GiB");
        assert_eq!(format_size(1536), "1536 B");
        assert_eq!(format_size(2048), "2 KiB");
        assert_eq!(format_size(1000), "1000 B");
        assert_eq!(format_size(0), "0 B");
    }
}
