//! The ZIP writer of the service's downloads, `service::package::
//! zip_stored_at`, with fuzzed member names, contents and date.
//!
//! Input: 8 bytes of Unix time (little-endian i64), 1 byte of UTC offset
//! in quarter hours (i8), then fields cut at `acme_ca_fuzz::SEPARATOR`,
//! taken in pairs: a member name (UTF-8) and its contents.
//!
//! Invariants: no panic; an archive that is written reads back with the
//! zip crate (an independent reader): the same members in the same order,
//! stored, with the same bytes and CRC, mode 0600, the documented date, and
//! every name a safe relative path.
#![no_main]

use std::io::{Cursor, Read};

use acme_ca::fuzzing::package::zip_stored_at;
use acme_ca_fuzz::fields;
use libfuzzer_sys::fuzz_target;
use time::{OffsetDateTime, UtcOffset};

/// The (year, month, day, hour, minute, second) the archive must carry for
/// `at`: its own wall-clock time to two seconds, clamped to 1980..=2107
/// (the doc of `zip_stored_at`).
fn dos_fields(at: OffsetDateTime) -> (u16, u8, u8, u8, u8, u8) {
    if at.year() < 1980 {
        return (1980, 1, 1, 0, 0, 0);
    }
    if at.year() > 2107 {
        return (2107, 12, 31, 23, 59, 58);
    }
    (
        at.year() as u16,
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second() / 2 * 2,
    )
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let secs = i64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let offset =
        UtcOffset::from_whole_seconds(i32::from(data[8] as i8) * 900).unwrap_or(UtcOffset::UTC);
    let modified = OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .checked_to_offset(offset)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let parts = fields(&data[9..]);
    let mut files: Vec<(&str, &[u8])> = Vec::new();
    for pair in parts.chunks(2) {
        let Ok(name) = std::str::from_utf8(pair[0]) else {
            return;
        };
        files.push((name, pair.get(1).copied().unwrap_or_default()));
    }

    let Ok(archive) = zip_stored_at(&files, modified) else {
        return;
    };
    let mut reader = zip::ZipArchive::new(Cursor::new(&archive[..]))
        .unwrap_or_else(|e| panic!("the archive does not open: {e}"));
    assert_eq!(reader.len(), files.len());
    let (year, month, day, hour, minute, second) = dos_fields(modified);
    for (index, (name, contents)) in files.iter().enumerate() {
        let mut entry = reader
            .by_index(index)
            .unwrap_or_else(|e| panic!("member {index} does not read: {e}"));
        assert_eq!(entry.name().expect("a UTF-8 name"), *name);
        assert!(
            entry.enclosed_name().is_some(),
            "{name:?} is not a safe path"
        );
        assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
        assert_eq!(entry.size(), contents.len() as u64);
        assert_eq!(entry.unix_mode(), Some(0o100_600));
        let date = entry.last_modified().expect("a date is recorded");
        assert_eq!(
            (
                date.year(),
                date.month(),
                date.day(),
                date.hour(),
                date.minute(),
                date.second()
            ),
            (year, month, day, hour, minute, second)
        );
        // The zip crate's reader checks the recorded CRC-32 against what it
        // read and fails with "Invalid checksum" when they differ.
        let mut read = Vec::with_capacity(contents.len());
        entry
            .read_to_end(&mut read)
            .unwrap_or_else(|e| panic!("member {name:?} does not read back: {e}"));
        assert_eq!(&read[..], *contents);
    }
});
