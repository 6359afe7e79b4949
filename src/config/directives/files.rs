//! Static files: DocumentRoot, mod_alias's Alias family, mod_dir, mod_mime's types, and
//! what `<Directory>`/`<Files>` sections hold.

use super::super::*;
use crate::files::{Alias, DirMatch, DirSection, OptionsLine};

/// `DocumentRoot`.
pub(super) fn documentroot(b: &mut Builder, d: &Directive, ctx: Ctx) {
    match d.args.as_slice() {
        [p] => {
            let root = b.rooted(p);
            if !root.is_dir() {
                // Apache 2.4 starts with a warning (AH00112) and answers 404s.
                b.warn(
                    &d.loc,
                    format!("DocumentRoot [{}] does not exist", root.display()),
                );
            }
            b.vhosts[ctx.vhost()].files.document_root = Some(root);
        }
        _ => b.err(&d.loc, "DocumentRoot takes one directory"),
    }
}

/// `Alias`, `AliasMatch`, `ScriptAlias`, `ScriptAliasMatch`.
pub(super) fn alias(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let lower = d.name.to_ascii_lowercase();
    let regex = lower.ends_with("match");
    let script = lower.starts_with("script");
    let [from, to] = d.args.as_slice() else {
        return b.err(
            &d.loc,
            format!("{} takes a URL path and a file path", d.name),
        );
    };
    let matcher = if regex {
        match path_regex(from) {
            Ok(re) => Matcher::Regex(re),
            Err(e) => return b.err(&d.loc, format!("{} {from}: {e}", d.name)),
        }
    } else {
        Matcher::Prefix(from.clone())
    };
    if script {
        b.note_once(
            &d.loc,
            &d.name,
            "acts as a refusal: ringproxy runs no CGI programs, so paths it maps answer 403, never the programs' source",
        );
    }
    let target = if regex {
        to.clone()
    } else {
        b.rooted(to).display().to_string()
    };
    b.vhosts[ctx.vhost()].files.aliases.push(Alias {
        matcher,
        target,
        script,
    });
}

/// `DirectoryIndex` and `DirectorySlash` at server level.
pub(super) fn directory_index(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(names) = index_names(b, d) {
        b.vhosts[ctx.vhost()].files.index = Some(names);
    }
}

pub(in super::super) fn index_names(b: &mut Builder, d: &Directive) -> Option<Vec<String>> {
    if d.args.is_empty() {
        b.err(&d.loc, "DirectoryIndex takes one or more file names");
        return None;
    }
    Some(d.args.clone())
}

pub(super) fn directory_slash(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(on) = b.one_flag(d) {
        b.vhosts[ctx.vhost()].files.slash = Some(on);
    }
}

/// `Options` outside any section: Apache applies it to every directory of the server.
pub(super) fn options(b: &mut Builder, d: &Directive, ctx: Ctx) {
    match OptionsLine::parse(&d.args) {
        Ok(line) => {
            let mut s = DirSection::new(DirMatch::Path(PathBuf::from("/"), None));
            s.options = Some(line);
            b.vhosts[ctx.vhost()].files.sections.push(s);
        }
        Err(m) => b.err(&d.loc, m),
    }
}

/// `TypesConfig`.
pub(super) fn typesconfig(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    match d.args.as_slice() {
        [p] => b.types_config = Some((b.rooted(p), d.loc.clone())),
        _ => b.err(&d.loc, "TypesConfig takes one file"),
    }
}

/// `AddType`, `RemoveType`.
pub(super) fn addtype(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let remove = d.name.eq_ignore_ascii_case("RemoveType");
    match d.args.as_slice() {
        [_] | [] if !remove => b.err(&d.loc, "AddType takes a media type and extensions"),
        [] => b.err(&d.loc, "RemoveType takes extensions"),
        args => b.type_edits.push((remove, args.to_vec())),
    }
}

/// `AddHandler handler ext…`: files with these extensions would be run by the handler in
/// Apache; ringproxy refuses them (403) rather than send their source.
pub(super) fn addhandler(b: &mut Builder, d: &Directive, ctx: Ctx) {
    match d.args.as_slice() {
        [_, exts @ ..] if !exts.is_empty() => {
            let space = &mut b.vhosts[ctx.vhost()].files;
            for e in exts {
                space
                    .handled_exts
                    .push(e.trim_start_matches('.').to_ascii_lowercase());
            }
            b.note_once(
                &d.loc,
                &d.name,
                "acts as a refusal: ringproxy runs no handlers, so files with these extensions answer 403, never their source",
            );
        }
        _ => b.err(&d.loc, "AddHandler takes a handler and extensions"),
    }
}

/// The section a `<Directory>`, `<DirectoryMatch>`, `<Files>` or `<FilesMatch>` line opens.
pub(in super::super) fn dir_match(b: &Builder, s: &Section) -> Result<DirMatch, String> {
    let is_match = s.name.to_ascii_lowercase().ends_with("match");
    match (is_match, s.args.as_slice()) {
        (true, [re]) | (false, [_, re]) if is_match || s.args[0] == "~" => path_regex(re)
            .map(DirMatch::Regex)
            .map_err(|e| format!("<{} {re}>: bad regex: {e}", s.name)),
        (false, [p]) => {
            let path = b.rooted(p);
            let text = path.display().to_string();
            let glob = if text.contains(['*', '?', '[']) {
                let pattern = glob::Pattern::new(text.trim_end_matches('/'))
                    .map_err(|e| format!("<{} {p}>: {e}", s.name))?;
                Some(pattern)
            } else {
                None
            };
            Ok(DirMatch::Path(path, glob))
        }
        _ => Err(format!("<{}> takes one path (or ~ and a regex)", s.name)),
    }
}

pub(in super::super) fn name_match(s: &Section) -> Result<crate::files::NameMatch, String> {
    use crate::files::NameMatch;
    let is_match = s.name.to_ascii_lowercase().ends_with("match");
    match (is_match, s.args.as_slice()) {
        (true, [re]) | (false, [_, re]) if is_match || s.args[0] == "~" => path_regex(re)
            .map(NameMatch::Regex)
            .map_err(|e| format!("<{} {re}>: bad regex: {e}", s.name)),
        (false, [name]) => glob::Pattern::new(name)
            .map(NameMatch::Glob)
            .map_err(|e| format!("<{} {name}>: {e}", s.name)),
        _ => Err(format!("<{}> takes one name (or ~ and a regex)", s.name)),
    }
}
