//! The PEM splitter of the service's CSR batch upload (`POST /csr`, the
//! `pem` member), reached through `acme_ca::fuzzing::pem_blocks` (the
//! service's own function, not a copy), followed by the CSR check each
//! block then gets.
//!
//! Invariants: no panic; every block found is the text between a BEGIN and
//! an END line of the label, in order, its DER is what that text decodes
//! to, and writing the DER blocks out as PEM again splits into the same
//! DER.
#![no_main]

use acme_ca::fuzzing::csr;
use acme_ca::fuzzing::pem_blocks;
use libfuzzer_sys::fuzz_target;

const LABEL: &str = "CERTIFICATE REQUEST";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(blocks) = pem_blocks(text, LABEL) else {
        return;
    };
    let begin = format!("-----BEGIN {LABEL}-----");
    let end = format!("-----END {LABEL}-----");
    assert!(blocks.len() <= text.matches(&begin).count());
    let mut from = 0;
    for (der, block) in &blocks {
        assert!(block.starts_with(&begin), "{block:?}");
        let body = block.strip_suffix('\n').expect("a block ends in a newline");
        assert!(body.ends_with(&end), "{block:?}");
        let at = text[from..].find(body).expect("blocks are found in order") + from;
        from = at + body.len();
        let (label, decoded) = der::pem::decode_vec(body.as_bytes()).expect("a block decodes");
        assert_eq!(label, LABEL);
        assert_eq!(&decoded, der);
        // What the upload does with each block next.
        let _ = csr::parse_and_verify(der);
    }

    let rewritten: String = blocks
        .iter()
        .map(|(der, _)| {
            der::pem::encode_string(LABEL, der::pem::LineEnding::LF, der).expect("encodes")
        })
        .collect();
    let again = pem_blocks(&rewritten, LABEL).expect("written PEM splits again");
    assert_eq!(
        again.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        blocks.iter().map(|(d, _)| d).collect::<Vec<_>>()
    );
});
