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

/// Where a field's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Span {
    /// In the input buffer.
    Input(Range<usize>),
    /// In the list's own arena.
    Own(Range<usize>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    name: Span,
    value: Span,
    /// The whole line as received (`Name:  value`), while the field is unchanged.
    line: Option<Range<usize>>,
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
        self.fields.extend(fields.iter().map(|h| Field {
            name: Span::Input(h.name.clone()),
            value: Span::Input(h.value.clone()),
            line: Some(h.name.start..h.value.end),
        }));
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
                name: Span::Input(start..start + colon),
                value: Span::Input(vstart..vstart + value.len()),
                line: Some(start..start + line.len()),
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
        match s {
            Span::Input(r) => &input[r.clone()],
            Span::Own(r) => &self.arena[r.clone()],
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
        self.fields[i].line.is_some()
    }

    /// Keeps the fields for which `keep(name, value)` holds.
    pub fn retain(&mut self, input: &[u8], mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let arena = &self.arena;
        let bytes = |s: &Span| match s {
            Span::Input(r) => &input[r.clone()],
            Span::Own(r) => &arena[r.clone()],
        };
        self.fields
            .retain(|f| keep(bytes(&f.name), bytes(&f.value)));
    }

    fn own(&mut self, b: &[u8]) -> Span {
        let start = self.arena.len();
        self.arena.extend_from_slice(b);
        Span::Own(start..self.arena.len())
    }

    fn owned_field(&mut self, name: &[u8], value: &[u8]) -> Field {
        Field {
            name: self.own(name),
            value: self.own(value),
            line: None,
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
        let value = Span::Own(start..self.arena.len());
        self.fields.push(Field {
            name,
            value,
            line: None,
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
        f.line = None;
    }

    /// Writes the fields as HTTP/1.1 header lines, each ending in CRLF: a field as
    /// received keeps its line byte for byte; an edited or added one is `Name: value`,
    /// where CR and LF never reach the output (a rule's value cannot smuggle a header or
    /// end the head early).
    pub fn write_h1(&self, input: &[u8], out: &mut Vec<u8>) {
        for f in &self.fields {
            match &f.line {
                Some(line) => out.extend_from_slice(&input[line.clone()]),
                None => {
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
}
