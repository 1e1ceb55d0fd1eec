//! Quoting user-supplied text in messages.

/// `s` cut to at most `max_bytes` bytes, at a character boundary, with `...` appended when it
/// was cut: keeps a message bounded when someone sends a megabyte of garbage.
pub fn truncate(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn cuts_at_the_limit_and_never_inside_a_character() {
        assert_eq!(truncate("short", 64), "short");
        assert_eq!(truncate(&"x".repeat(64), 64), "x".repeat(64), "exactly the limit is not cut");
        assert_eq!(truncate(&"x".repeat(70), 64), format!("{}...", "x".repeat(64)));
        let s = format!("{}é{}", "a".repeat(63), "b".repeat(10));
        assert_eq!(truncate(&s, 64), format!("{}...", "a".repeat(63)));
        assert_eq!(truncate("é", 1), "...");
    }
}
