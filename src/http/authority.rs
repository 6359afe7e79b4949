//! `host[:port]` and `[v6]:port`: the one place that splits an authority, for Host headers,
//! absolute-form targets, member URLs, `Listen` and `<VirtualHost>` addresses.

/// Why an authority does not split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("unclosed '[' in IPv6 address")]
    Unclosed,
    #[error("something other than :port after an IPv6 address")]
    AfterBracket,
}

/// Splits at the port's colon: the host (an IPv6 literal keeps its brackets) and the port's
/// text (`None`: no colon; `Some("")`: a colon and nothing after it). No validation of
/// either part: callers check what they need.
pub fn split(a: &[u8]) -> Result<(&[u8], Option<&[u8]>), AuthorityError> {
    if a.first() == Some(&b'[') {
        let end = memchr::memchr(b']', a).ok_or(AuthorityError::Unclosed)?;
        let (host, rest) = a.split_at(end + 1);
        return match rest {
            [] => Ok((host, None)),
            [b':', port @ ..] => Ok((host, Some(port))),
            _ => Err(AuthorityError::AfterBracket),
        };
    }
    Ok(match memchr::memrchr(b':', a) {
        Some(i) => (&a[..i], Some(&a[i + 1..])),
        None => (a, None),
    })
}

/// The host part, leniently: whatever precedes the port (or the whole text when it does
/// not split), for matching names against hosts that were validated before.
pub fn host(a: &[u8]) -> &[u8] {
    match split(a) {
        Ok((host, _)) => host,
        Err(AuthorityError::AfterBracket) => {
            &a[..memchr::memchr(b']', a).map_or(a.len(), |i| i + 1)]
        }
        Err(AuthorityError::Unclosed) => a,
    }
}

/// [`split`] for text. The delimiters are ASCII, so the parts end on character boundaries.
pub fn split_str(a: &str) -> Result<(&str, Option<&str>), AuthorityError> {
    let (host, port) = split(a.as_bytes())?;
    Ok((&a[..host.len()], port.map(|p| &a[a.len() - p.len()..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        let ok = |a: &str, h: &str, p: Option<&str>| assert_eq!(split_str(a), Ok((h, p)), "{a}");
        ok("example.com", "example.com", None);
        ok("example.com:8080", "example.com", Some("8080"));
        ok("example.com:", "example.com", Some(""));
        ok("[::1]", "[::1]", None);
        ok("[::1]:80", "[::1]", Some("80"));
        ok("a:b:c", "a:b", Some("c"));
        ok("héllo:1", "héllo", Some("1"));
        assert_eq!(split_str("[::1"), Err(AuthorityError::Unclosed));
        assert_eq!(split_str("[::1]x"), Err(AuthorityError::AfterBracket));
    }
}
