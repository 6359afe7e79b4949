//! Protocol-neutral message parts: a header list that borrows from the buffer a head was
//! read into and holds owned edits beside it.
//!
//! HTTP/1.1 parses a head into byte ranges of the connection's read buffer (the *input*);
//! forwarding edits it (hop-by-hop removal, X-Forwarded-*, `Header`/`RequestHeader` rules,
//! ProxyPassReverse, cookie rewriting) and a writer serializes it. A field no edit touched
//! still points into the input, and the HTTP/1.1 writer copies its line as received (zero
//! copy until the final write, and byte for byte); an edited or added field lives in the
//! list's own arena. An HTTP/2 or AJP side fills the same list from its own decoding (every
//! field owned, or borrowed from its frame buffer) and the same edits apply; an AJP or
//! HTTP/2 writer reads names and values instead of lines.
//!
//! Spans are offsets, not references, so one list (and its arena) is kept per connection
//! and reused from request to request without allocating.

use std::ops::Range;

use super::head::HeaderRange;

/// Where a field's bytes are: `start..end` of the input buffer, or of the list's own arena
/// (`own`). Offsets are `u32` (heads are limited far below 4 GiB) so a field is 32 bytes
/// and building the list per request writes little memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    own: bool,
    start: u32,
    end: u32,
}

impl Span {
    fn input(r: &Range<usize>) -> Span {
        Span {
            own: false,
            start: r.start as u32,
            end: r.end as u32,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    name: Span,
    value: Span,
    /// While the field is unchanged: it is written as the input's bytes from the name's
    /// start to here (the line as received, blanks after the value included).
    unchanged: bool,
    line_end: u32,
}

impl Field {
    /// A parsed field, borrowed from the input.
    fn input(h: &HeaderRange) -> Field {
        Field {
            name: Span::input(&h.name),
            value: Span::input(&h.value),
            unchanged: true,
            line_end: h.value.end as u32,
        }
    }
}

/// A header list over an input buffer (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Headers {
    fields: Vec<Field>,
    arena: Vec<u8>,
}

impl Headers {
    /// Empties the list, keeping its memory.
    pub fn clear(&mut self) {
        self.fields.clear();
        self.arena.clear();
    }

    /// Starts over with the fields of a parsed head, in order, all borrowed.
    pub fn load(&mut self, fields: &[HeaderRange]) {
        self.clear();
        self.fields.extend(fields.iter().map(Field::input));
    }

    /// Starts over with the fields of a parsed head over `input` for which
    /// `keep(name, value)` holds: loading and filtering in one pass.
    pub fn load_where(
        &mut self,
        input: &[u8],
        fields: &[HeaderRange],
        mut keep: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        self.clear();
        let kept = fields
            .iter()
            .filter(|h| keep(&input[h.name.clone()], &input[h.value.clone()]));
        self.fields.extend(kept.map(Field::input));
    }

    /// Starts over with the header lines of `head` (`Name: value` each, CRLF or LF ended;
    /// lines without a colon are skipped), all borrowed from `head`.
    pub fn load_lines(&mut self, head: &[u8]) {
        self.clear();
        let mut at = 0;
        for raw in head.split(|&b| b == b'\n') {
            let start = at;
            at += raw.len() + 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let value = super::head::trim(&line[colon + 1..]);
            let vstart = start + (value.as_ptr() as usize - line.as_ptr() as usize);
            self.fields.push(Field {
                name: Span::input(&(start..start + colon)),
                value: Span::input(&(vstart..vstart + value.len())),
                unchanged: true,
                line_end: (start + line.len()) as u32,
            });
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn bytes<'a>(&'a self, input: &'a [u8], s: &Span) -> &'a [u8] {
        match s.own {
            false => &input[s.range()],
            true => &self.arena[s.range()],
        }
    }

    /// The `i`th field's name and value.
    pub fn get<'a>(&'a self, input: &'a [u8], i: usize) -> (&'a [u8], &'a [u8]) {
        let f = &self.fields[i];
        (self.bytes(input, &f.name), self.bytes(input, &f.value))
    }

    /// Every field, in order.
    pub fn iter<'a>(&'a self, input: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        (0..self.fields.len()).map(move |i| self.get(input, i))
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn value<'a>(&'a self, input: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.iter(input)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether the `i`th field is still as received.
    pub fn unchanged(&self, i: usize) -> bool {
        self.fields[i].unchanged
    }

    /// Keeps the fields for which `keep(name, value)` holds.
    pub fn retain(&mut self, input: &[u8], mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let arena = &self.arena;
        let bytes = |s: &Span| match s.own {
            false => &input[s.range()],
            true => &arena[s.range()],
        };
        self.fields
            .retain(|f| keep(bytes(&f.name), bytes(&f.value)));
    }

    fn own(&mut self, b: &[u8]) -> Span {
        let start = self.arena.len();
        self.arena.extend_from_slice(b);
        self.arena_span(start)
    }

    fn arena_span(&self, start: usize) -> Span {
        Span {
            own: true,
            start: start as u32,
            end: self.arena.len() as u32,
        }
    }

    fn owned_field(&mut self, name: &[u8], value: &[u8]) -> Field {
        Field {
            name: self.own(name),
            value: self.own(value),
            unchanged: false,
            line_end: 0,
        }
    }

    /// Adds a field at the end.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let f = self.owned_field(name, value);
        self.fields.push(f);
    }

    /// Adds `name` with the values already sent joined by `, ` and `ours` appended (how
    /// Apache's `apr_table_mergen` builds X-Forwarded-*).
    pub fn push_merged<'v>(
        &mut self,
        name: &[u8],
        sent: impl Iterator<Item = &'v [u8]>,
        ours: &[u8],
    ) {
        let name = self.own(name);
        let start = self.arena.len();
        for v in sent {
            self.arena.extend_from_slice(v);
            self.arena.extend_from_slice(b", ");
        }
        self.arena.extend_from_slice(ours);
        let value = self.arena_span(start);
        self.fields.push(Field {
            name,
            value,
            unchanged: false,
            line_end: 0,
        });
    }

    /// Adds a field before the `at`th one.
    pub fn insert(&mut self, at: usize, name: &[u8], value: &[u8]) {
        let f = self.owned_field(name, value);
        self.fields.insert(at.min(self.fields.len()), f);
    }

    /// Replaces the `i`th field's value (its name stays as spelled).
    pub fn set_value(&mut self, i: usize, value: &[u8]) {
        let v = self.own(value);
        let f = &mut self.fields[i];
        f.value = v;
        f.unchanged = false;
    }

    /// Writes the fields as HTTP/1.1 header lines, each ending in CRLF: a field as
    /// received keeps its line byte for byte; an edited or added one is `Name: value`,
    /// where CR and LF never reach the output (a rule's value cannot smuggle a header or
    /// end the head early).
    pub fn write_h1(&self, input: &[u8], out: &mut Vec<u8>) {
        for f in &self.fields {
            match f.unchanged {
                true => out.extend_from_slice(&input[f.name.start as usize..f.line_end as usize]),
                false => {
                    out.extend_from_slice(self.bytes(input, &f.name));
                    out.extend_from_slice(b": ");
                    let value = self.bytes(input, &f.value);
                    out.extend(value.iter().filter(|&&b| b != b'\r' && b != b'\n'));
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_fields_keep_their_lines_and_edits_are_owned() {
        let input: &[u8] = b"A:1\r\nB:   two\r\nno colon\r\nC: 3\r\n";
        let mut h = Headers::default();
        h.load_lines(input);
        assert_eq!(h.len(), 3);
        assert_eq!(h.value(input, b"b"), Some(&b"two"[..]));
        h.retain(input, |n, _| n != b"C");
        h.set_value(0, b"one\r\nX-Evil: 1");
        h.insert(0, b"Host", b"h");
        h.push(b"D", b"4");
        assert!(!h.unchanged(1) && h.unchanged(2));
        let mut out = Vec::new();
        h.write_h1(input, &mut out);
        assert_eq!(out, b"Host: h\r\nA: oneX-Evil: 1\r\nB:   two\r\nD: 4\r\n");
        h.clear();
        assert!(h.is_empty());
    }

    /// Found by the `header_rules` fuzz target: a line with blanks after its value (and a CR
    /// inside its name) is still unchanged, and goes out as received.
    #[test]
    fn lines_with_trailing_blanks_stay_as_received() {
        let input: &[u8] = b"Odd X\rn:t\0%{BA \r\nB: v  \r\n";
        let mut h = Headers::default();
        h.load_lines(input);
        assert!(h.unchanged(0) && h.unchanged(1));
        assert_eq!(h.get(input, 1), (&b"B"[..], &b"v"[..]));
        let mut out = Vec::new();
        h.write_h1(input, &mut out);
        assert_eq!(out, input);
    }
}
