//! The call verification code: a short number both ends of a peer connection derive from
//! the two DTLS certificate fingerprints the connection actually uses and the call's
//! room, to read to each other like a safety number. No IO.
//!
//! Media is encrypted with keys from a DTLS handshake between the two devices; each
//! side checks the other's certificate against the fingerprint that arrived in the SDP,
//! which travelled through the server. A server (or anything between) that rewrites the
//! SDP can put itself in the middle with certificates of its own: each device then sees
//! a different pair of fingerprints, and the two codes differ. What it proves and what it
//! does not is in docs/security.md.
//!
//! The code: SHA-256 over a version label, the room, and the two fingerprints in sorted
//! order (so both sides hash the same bytes), read as twelve decimal digits in four
//! groups ("123 456 789 012"): about 40 bits, so a man in the middle cannot search for
//! certificates that make both sides' codes agree in the time a call takes to set up.

use sha2::{Digest, Sha256};

/// What goes into the hash first; a new derivation gets a new label.
const LABEL: &[u8] = b"tincan call verification v1";

/// The certificate fingerprints an SDP declares (`a=fingerprint:<hash> <hex>`), in a
/// canonical form (hash name lowercase, hex uppercase), session and media level alike.
pub fn fingerprints(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
        .filter_map(|v| {
            let (hash, hex) = v.trim().split_once(' ')?;
            Some(format!(
                "{} {}",
                hash.to_ascii_lowercase(),
                hex.trim().to_ascii_uppercase()
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The code for `room` from our fingerprints and theirs (as [`fingerprints`] reads
/// them); `None` when either side declares none, or more than one (nothing to compare).
pub fn code(room: &str, ours: &[String], theirs: &[String]) -> Option<String> {
    let ([ours], [theirs]) = (ours, theirs) else {
        return None;
    };
    let (first, second) = if ours <= theirs {
        (ours, theirs)
    } else {
        (theirs, ours)
    };
    let mut hash = Sha256::new();
    for part in [LABEL, room.as_bytes(), first.as_bytes(), second.as_bytes()] {
        // Length-prefixed, so no two different inputs run together into the same bytes.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 1_000_000_000_000;
    let digits = format!("{n:012}");
    Some(
        digits
            .as_bytes()
            .chunks(3)
            .map(|c| std::str::from_utf8(c).expect("ASCII digits"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha-256 AA:BB:CC";
    const B: &str = "sha-256 11:22:33";

    fn one(f: &str) -> Vec<String> {
        vec![f.to_owned()]
    }

    #[test]
    fn both_ends_get_the_same_code_in_four_groups_of_three_digits() {
        let ours = code("room-1", &one(A), &one(B)).unwrap();
        let theirs = code("room-1", &one(B), &one(A)).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 15, "{ours}");
        assert!(ours
            .split(' ')
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())));
    }

    #[test]
    fn a_substituted_fingerprint_or_another_room_gives_another_code() {
        let real = code("room-1", &one(A), &one(B)).unwrap();
        // A man in the middle: each side sees the middle's certificate instead.
        let alice_sees = code("room-1", &one(A), &one("sha-256 99:99:99")).unwrap();
        let bob_sees = code("room-1", &one("sha-256 88:88:88"), &one(B)).unwrap();
        assert_ne!(alice_sees, bob_sees);
        assert_ne!(real, alice_sees);
        assert_ne!(real, code("room-2", &one(A), &one(B)).unwrap());
    }

    #[test]
    fn fingerprints_are_read_from_the_sdp_in_one_form() {
        let sdp = "v=0\r\na=fingerprint:SHA-256 aa:bb:cc\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=fingerprint:sha-256 AA:BB:CC\r\na=mid:0\r\n";
        assert_eq!(fingerprints(sdp), one(A));
        assert_eq!(code("r", &fingerprints(sdp), &[]), None);
        let two = "a=fingerprint:sha-256 AA\r\na=fingerprint:sha-1 BB\r\n";
        assert_eq!(
            code("r", &fingerprints(two), &one(B)),
            None,
            "ambiguous: no code"
        );
    }
}
