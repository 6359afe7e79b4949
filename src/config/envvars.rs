//! Debian's `/etc/apache2/envvars`: the shell file `apache2ctl` sources before starting
//! Apache, which is where `${APACHE_RUN_USER}`, `${APACHE_LOG_DIR}` and the rest of
//! Debian's apache2.conf get their values.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// For a config file named `apache2.conf` with an `envvars` file beside it, the variables
/// that file sets, read the way apache2ctl reads them: `/bin/sh` sources it with
/// `APACHE_CONFDIR` set to the tree's directory (envvars derives the suffix of
/// multi-instance trees such as `/etc/apache2-www` from it). Only what the file sets or
/// changes is returned; `${NAME}` falls back to the process environment for the rest.
/// `None` when the file is not such a tree; `Some(Err)` when the shell fails.
pub fn debian(config: &Path) -> Option<Result<HashMap<String, String>, String>> {
    if config.file_name()? != "apache2.conf" {
        return None;
    }
    let dir = std::env::current_dir()
        .unwrap_or_default()
        .join(config.parent()?);
    let file = dir.join("envvars");
    if !file.is_file() {
        return None;
    }
    Some(source(&file, &dir))
}

fn source(file: &Path, dir: &Path) -> Result<HashMap<String, String>, String> {
    // `set -a` exports every assignment, whether or not the file says `export`; `env -0`
    // separates values by NUL so a value may hold newlines.
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"set -a; . "$1" >/dev/null; env -0"#)
        .arg("sh")
        .arg(file)
        .env("APACHE_CONFDIR", dir)
        .output()
        .map_err(|e| format!("cannot run /bin/sh to read {}: {e}", file.display()))?;
    if !out.status.success() {
        return Err(format!(
            "reading {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_env0(&out.stdout)
        .filter(|(k, v)| std::env::var(k).ok().as_deref() != Some(v.as_str()))
        .collect())
}

/// `NAME=value` entries separated by NUL.
fn parse_env0(bytes: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    bytes.split(|b| *b == 0).filter_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        let (k, v) = entry.split_once('=')?;
        (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env0_entries() {
        let got: Vec<_> = parse_env0(b"A=1\0B=x=y\0\0C=line\nnext\0bad\0").collect();
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), "line\nnext".into())
            ]
        );
    }

    #[test]
    fn sources_an_envvars_file_with_the_confdir() {
        let dir = std::env::temp_dir().join(format!("ringproxy-envvars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("envvars"),
            "export RP_TEST_LOG=/var/log/apache2$SUFFIX\nRP_TEST_DIR=$APACHE_CONFDIR\necho noise\n",
        )
        .unwrap();
        std::fs::write(dir.join("apache2.conf"), "").unwrap();
        let vars = debian(&dir.join("apache2.conf")).unwrap().unwrap();
        assert_eq!(vars["RP_TEST_LOG"], "/var/log/apache2");
        assert_eq!(vars["RP_TEST_DIR"], dir.display().to_string());
        assert!(debian(&dir.join("other.conf")).is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
