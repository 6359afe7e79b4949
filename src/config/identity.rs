//! `User`/`Group` names to ids, and whether a directory can be written by whom the process
//! will run as: what `-t` checks so that a start does not fail on it later.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The ids of `user` and of `group` (default: the user's primary group). getpwnam and
/// getgrnam are called on the loading thread only (configuration loads are not concurrent).
pub fn resolve(user: &str, group: Option<&str>) -> Result<(u32, u32), String> {
    let cuser = CString::new(user).map_err(|_| format!("User {user}: bad name"))?;
    // SAFETY: getpwnam returns a pointer to static storage, read at once on this thread
    // before any other lookup.
    let pw = unsafe { libc::getpwnam(cuser.as_ptr()) };
    if pw.is_null() {
        return Err(format!("User {user}: no such user"));
    }
    // SAFETY: checked non-null above.
    let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Some(group) = group {
        let cgroup = CString::new(group).map_err(|_| format!("Group {group}: bad name"))?;
        // SAFETY: as for getpwnam.
        let gr = unsafe { libc::getgrnam(cgroup.as_ptr()) };
        if gr.is_null() {
            return Err(format!("Group {group}: no such group"));
        }
        // SAFETY: checked non-null above.
        gid = unsafe { (*gr).gr_gid };
    }
    Ok((uid, gid))
}

/// Whether `uid`/`gid` may write `path` (for a directory: create files in it), by its
/// owner, group and mode bits (root may always). Supplementary groups are not looked at.
pub fn writable_by(path: &Path, uid: u32, gid: u32) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let mode = meta.mode();
    uid == 0
        || (meta.uid() == uid && mode & 0o200 != 0)
        || (meta.gid() == gid && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// Whether this process may write `path` now (access(2): its own ids and groups).
pub fn writable_now(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directories() {
        assert_eq!(resolve("root", None), Ok((0, 0)));
        assert!(resolve("no-such-user-here", None)
            .unwrap_err()
            .contains("no such user"));
        assert!(resolve("root", Some("no-such-group-here"))
            .unwrap_err()
            .contains("no such group"));
        let dir = std::env::temp_dir().join(format!("ringproxy-ident-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let owner = std::fs::metadata(&dir).unwrap().uid();
        assert!(writable_by(&dir, owner, 12345));
        assert!(writable_by(&dir, 0, 0));
        assert!(!writable_by(&dir, 54321, 54321) || owner == 54321);
        assert!(!writable_by(&dir.join("missing"), owner, 0));
        std::fs::remove_dir_all(&dir).ok();
    }
}
