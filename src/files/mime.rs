//! mod_mime's types: `TypesConfig` (a mime.types file), `AddType`, `RemoveType`.

use std::collections::HashMap;
use std::path::Path;

/// Where the types come from when no `TypesConfig` line says: Debian's and RHEL's file.
pub const SYSTEM_TYPES: &str = "/etc/mime.types";

/// Used when neither `TypesConfig` nor [`SYSTEM_TYPES`] exists: the types a site's static
/// files mostly are.
const BUILT_IN: &str = "\
text/html html htm
text/css css
text/javascript js mjs
application/json json
text/plain txt
image/png png
image/jpeg jpg jpeg
image/gif gif
image/svg+xml svg
image/webp webp
image/x-icon ico
font/woff woff
font/woff2 woff2
application/pdf pdf
application/xml xml
application/wasm wasm
";

/// Extension (lower case) -> media type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Types {
    by_ext: HashMap<String, String>,
}

impl Types {
    /// The built-in table.
    pub fn built_in() -> Types {
        Types::parse(BUILT_IN)
    }

    /// A mime.types file: `type ext ext …` per line, `#` comments.
    pub fn parse(text: &str) -> Types {
        let mut t = Types::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            if let Some(ty) = words.next() {
                t.add(ty, words);
            }
        }
        t
    }

    /// `AddType type ext…` (a leading dot is optional, as in Apache).
    pub fn add<'a>(&mut self, ty: &str, exts: impl IntoIterator<Item = &'a str>) {
        for e in exts {
            let e = e.trim_start_matches('.').to_ascii_lowercase();
            if !e.is_empty() {
                self.by_ext.insert(e, ty.to_string());
            }
        }
    }

    /// `RemoveType ext…`.
    pub fn remove<'a>(&mut self, exts: impl IntoIterator<Item = &'a str>) {
        for e in exts {
            self.by_ext
                .remove(&e.trim_start_matches('.').to_ascii_lowercase());
        }
    }

    /// The type of a file by its extensions: as mod_mime, every extension after the first
    /// dot counts and the last one with a type wins (`a.html.en` is text/html); `None`
    /// sends no Content-Type, as Apache 2.4 does for an unknown type.
    pub fn of(&self, path: &Path) -> Option<&str> {
        let name = path.file_name()?.to_str()?;
        name.split('.')
            .skip(1)
            .filter_map(|e| {
                // Lookups are by lower-case extension; most are lower case already.
                if e.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.by_ext.get(&e.to_ascii_lowercase())
                } else {
                    self.by_ext.get(e)
                }
            })
            .last()
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_ext.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ext.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        let mut t =
            Types::parse("# c\ntext/html html htm\nimage/png png # tail\napplication/x-gzip gz\n");
        t.add("text/x-custom", [".cust", "CU"]);
        t.remove(["htm"]);
        let cases: &[(&str, Option<&str>)] = &[
            ("/a/index.html", Some("text/html")),
            ("/a/INDEX.HTML", Some("text/html")),
            ("/a/x.htm", None),
            ("/a/logo.png", Some("image/png")),
            ("/a/page.html.gz", Some("application/x-gzip")),
            ("/a/page.html.unknown", Some("text/html")),
            ("/a/x.cust", Some("text/x-custom")),
            ("/a/x.cu", Some("text/x-custom")),
            ("/a/README", None),
            ("/a/.png", Some("image/png")),
        ];
        for (path, want) in cases {
            assert_eq!(t.of(Path::new(path)), *want, "{path}");
        }
        assert!(Types::built_in().of(Path::new("a.css")).is_some());
    }
}
