//! Corrections to the SDP the stack writes, as text and without IO: what webrtc-rs 0.21
//! gets wrong against other stacks (Chromium, aiortc), fixed before a description is set
//! locally and sent.
//!
//! - It writes `a=rtcp-rsize` into every m-section of an answer, also where the offer
//!   has none; RFC 5506 §5 says an answerer must not then (the offerer may not parse
//!   reduced-size RTCP).
//! - It trickles candidates but never says so: RFC 8840 §4.1.1 wants
//!   `a=ice-options:trickle` at the session level of both offer and answer.

const RSIZE: &str = "a=rtcp-rsize";
const TRICKLE: &str = "a=ice-options:trickle";

/// Splits `sdp` into its session part and m-sections, keeping line ends.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out = vec![vec![]];
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            out.push(vec![]);
        }
        out.last_mut().expect("one section").push(line);
    }
    out
}

fn is(line: &str, attribute: &str) -> bool {
    line.trim_end() == attribute
}

/// The `a=mid:` of each m-section, in order (`None` where one has none).
fn mids(sections: &[Vec<&str>]) -> Vec<Option<String>> {
    sections[1..]
        .iter()
        .map(|s| {
            s.iter()
                .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
                .map(str::to_owned)
        })
        .collect()
}

/// The mid of the first m-section: the one a BUNDLE transport's candidates belong to.
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    mids(&sections(sdp)).into_iter().next().flatten()
}

/// Our answer to `offer`, with `a=rtcp-rsize` only in the m-sections where the offer has
/// it (matched by mid, else by position), and with the trickle option.
pub(crate) fn fix_answer(offer: &str, answer: &str) -> String {
    let offered = sections(offer);
    let offered_mids = mids(&offered);
    let answered = sections(answer);
    let answered_mids = mids(&answered);
    let mut out = String::with_capacity(answer.len() + TRICKLE.len() + 2);
    for (i, section) in answered.iter().enumerate() {
        let keep_rsize = i > 0 && {
            let by_mid = answered_mids[i - 1]
                .as_ref()
                .and_then(|mid| offered_mids.iter().position(|m| m.as_ref() == Some(mid)));
            by_mid
                .or(Some(i - 1))
                .and_then(|j| offered.get(j + 1))
                .is_some_and(|s| s.iter().any(|l| is(l, RSIZE)))
        };
        for line in section {
            if i > 0 && is(line, RSIZE) && !keep_rsize {
                continue;
            }
            out.push_str(line);
        }
    }
    announce_trickle(&out)
}

/// `sdp` with `a=ice-options:trickle` at the session level (once).
pub(crate) fn announce_trickle(sdp: &str) -> String {
    let parts = sections(sdp);
    if parts[0].iter().any(|l| is(l, TRICKLE)) {
        return sdp.to_owned();
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(sdp.len() + TRICKLE.len() + 2);
    for line in &parts[0] {
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(TRICKLE);
    out.push_str(eol);
    for section in &parts[1..] {
        for line in section {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=rtcp-mux\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:v\r\na=rtcp-mux\r\na=rtcp-rsize\r\n";

    #[test]
    fn rsize_stays_only_where_the_offer_has_it() {
        let answer = "v=0\r\ns=-\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:v\r\na=rtcp-mux\r\na=rtcp-rsize\r\n";
        let fixed = fix_answer(OFFER, answer);
        assert_eq!(
            fixed,
            "v=0\r\ns=-\r\na=ice-options:trickle\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=rtcp-mux\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:v\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
        );
    }

    #[test]
    fn sections_are_matched_by_mid_not_position() {
        // The answer lists video first: its rsize is the video offer's to decide.
        let answer = "v=0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:v\r\na=rtcp-rsize\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=rtcp-rsize\r\n";
        let fixed = fix_answer(OFFER, answer);
        assert_eq!(fixed.matches(RSIZE).count(), 1, "{fixed}");
        assert!(fixed.contains("a=mid:v\r\na=rtcp-rsize"), "{fixed}");
    }

    #[test]
    fn trickle_is_announced_once_at_the_session_level() {
        let once = announce_trickle(OFFER);
        assert!(
            once.contains("t=0 0\r\na=ice-options:trickle\r\nm=audio"),
            "{once}"
        );
        assert_eq!(announce_trickle(&once), once);
        assert_eq!(first_mid(OFFER).as_deref(), Some("a"));
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
