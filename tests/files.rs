//! Static files where no ProxyPass takes the path: DocumentRoot and Alias under
//! `<Directory>`/`<Files>` rules, through real sockets.

mod common;

use std::os::unix::fs::symlink;

use common::*;

struct Site {
    dir: Dir,
    proxy: runtime::Server,
    backend: Backend,
}

use ringproxy::runtime;

/// A site with a DocumentRoot, an Alias, a proxied /app and the given extra lines.
fn site(name: &str, extra: &str) -> Site {
    let dir = Dir::new(name);
    let root = dir.0.join("www");
    let assets = dir.0.join("assets");
    let outside = dir.0.join("outside");
    for d in [
        &root,
        &assets,
        &outside,
        &root.join("docs"),
        &root.join("empty"),
        &root.join("secret"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(root.join("docs/index.html"), "docs index\n").unwrap();
    std::fs::write(root.join("docs/a <b>.txt"), "lt gt\n").unwrap();
    std::fs::write(root.join("style.css"), "body{}\n").unwrap();
    std::fs::write(root.join("data.custom"), "x").unwrap();
    std::fs::write(root.join(".htpasswd"), "user:secret\n").unwrap();
    std::fs::write(root.join("secret/key.txt"), "do not serve\n").unwrap();
    std::fs::write(root.join("page.php"), "<?php echo $db_password; ?>\n").unwrap();
    std::fs::write(assets.join("logo.txt"), "asset\n").unwrap();
    std::fs::write(outside.join("passwd"), "root:x:0:0\n").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    symlink(outside.join("passwd"), root.join("link.txt")).unwrap();
    let backend = named("app");
    let config = format!(
        "Listen 127.0.0.1:0\nTimeout 5\nServerName test\nDocumentRoot {root}\nAlias /assets {assets}\n\
         ProxyPass /app http://127.0.0.1:{port}/app\n\
         AddType application/x-custom .custom\nAddHandler application/x-httpd-php .php\n\
         <Directory />\n  Require all denied\n  Options None\n</Directory>\n\
         <Directory {root}>\n  Require all granted\n</Directory>\n\
         <Directory {assets}>\n  Require all granted\n</Directory>\n\
         <Directory {root}/secret>\n  Require all denied\n</Directory>\n\
         <FilesMatch \"^\\.ht\">\n  Require all denied\n</FilesMatch>\n{extra}",
        extra = extra.replace("{ROOT}", &root.display().to_string()),
        root = root.display(),
        assets = assets.display(),
        port = backend.port(),
    );
    let proxy = proxy(&config);
    Site {
        dir,
        proxy,
        backend,
    }
}

fn get(s: &Site, path: &str) -> Response {
    Client::connect(s.proxy.addrs[0]).get(path)
}

fn request(s: &Site, head: &str) -> Response {
    let mut c = Client::connect(s.proxy.addrs[0]);
    c.send(head.as_bytes());
    c.read_response(head.starts_with("HEAD")).expect("response")
}

#[test]
fn files_headers_conditionals_and_ranges() {
    let s = site("files-basic", "");
    let r = get(&s, "/style.css");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), "body{}\n");
    assert_eq!(r.header("content-type").as_deref(), Some("text/css"));
    assert_eq!(r.header("content-length").as_deref(), Some("7"));
    assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
    let etag = r.header("etag").expect("etag");
    let modified = r.header("last-modified").expect("last-modified");
    assert!(r.header("date").is_some());
    assert_eq!(
        get(&s, "/data.custom").header("content-type").as_deref(),
        Some("application/x-custom")
    );

    let head = request(&s, "HEAD /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length").as_deref(), Some("7"));

    let r = request(
        &s,
        &format!("GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = request(
        &s,
        &format!("GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {modified}\r\n\r\n"),
    );
    assert_eq!(r.status, 304);
    let r = request(
        &s,
        "GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Match: \"other\"\r\n\r\n",
    );
    assert_eq!(r.status, 412);

    let r = request(
        &s,
        "GET /style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=1-3\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (206, "ody"));
    assert_eq!(r.header("content-range").as_deref(), Some("bytes 1-3/7"));
    let r = request(
        &s,
        "GET /style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=-2\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (206, "}\n"));
    let r = request(
        &s,
        "GET /style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=7-\r\n\r\n",
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range").as_deref(), Some("bytes */7"));
    let r = request(
        &s,
        "GET /style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2\r\nIf-Range: \"stale\"\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "body{}\n"));

    let r = request(
        &s,
        "POST /style.css HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET,HEAD,OPTIONS"));
}

#[test]
fn large_files_and_keep_alive_on_one_connection() {
    let s = site("files-large", "");
    let want: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let mut c = Client::connect(s.proxy.addrs[0]);
    for _ in 0..3 {
        let r = c.get("/big.bin");
        assert_eq!(r.status, 200);
        // The test client keeps the first MiB and counts the rest.
        assert_eq!((r.body_len, r.truncated), (want.len() as u64, false));
        assert!(
            r.body[..] == want[..r.body.len()],
            "big file arrived changed"
        );
        let r = c.get("/index.html");
        assert_eq!(r.text(), "<h1>home</h1>\n");
    }
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1048576-1048585\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &want[1048576..1048586])
    );
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-70000\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &want[want.len() - 70000..])
    );
    // Proxied paths still go to the member on the same connection.
    let r = c.get("/app/x");
    assert_eq!(
        (r.status, r.text().contains("app")),
        (200, true),
        "{}",
        r.head
    );
    assert_eq!(s.backend.request_count(), 1);
}

#[test]
fn directories_indexes_and_listings() {
    let s = site(
        "files-dirs",
        "<Directory {ROOT}/empty>\n  Options +Indexes\n</Directory>\n",
    );
    let r = get(&s, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>\n"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/html"));
    let r = get(&s, "/docs?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://test/docs/?x=1")
    );
    assert_eq!(get(&s, "/docs/").text(), "docs index\n");
    // No index and no Indexes: 403 (Options None at /, nothing re-enables it there).
    std::fs::remove_file(s.dir.0.join("www/docs/index.html")).unwrap();
    assert_eq!(get(&s, "/docs/").status, 403);
    // With Options +Indexes, a listing whose names are escaped.
    std::fs::write(s.dir.0.join("www/empty/<x>.txt"), "1").unwrap();
    let r = get(&s, "/empty/");
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("Index of /empty/"), "{page}");
    assert!(
        page.contains("&#60;x&#62;.txt") && !page.contains("<x>"),
        "{page}"
    );
    assert!(page.contains("href=\"%3Cx%3E.txt\""), "{page}");
}

#[test]
fn access_rules_handlers_and_traversal() {
    let s = site("files-deny", "ScriptAlias /cgi-bin/ {ROOT}/docs/\n");
    assert_eq!(get(&s, "/secret/key.txt").status, 403);
    assert_eq!(get(&s, "/.htpasswd").status, 403);
    // A file a handler would run is never sent as its source.
    let r = get(&s, "/page.php");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("db_password"));
    assert_eq!(get(&s, "/cgi-bin/index.html").status, 403);
    assert_eq!(get(&s, "/assets/logo.txt").text(), "asset\n");
    assert_eq!(get(&s, "/missing.txt").status, 404);
    for path in [
        "/../outside/passwd",
        "/%2e%2e/outside/passwd",
        "/docs/..%2f..%2foutside/passwd",
        "/assets/../../outside/passwd",
        "/assets/%2e%2e/%2e%2e/outside/passwd",
        "/style.css%00.txt",
        "/secret%2fkey.txt",
        "//secret/key.txt",
        "/./secret/./key.txt",
    ] {
        let r = get(&s, path);
        assert!(
            !r.text().contains("root:x") && !r.text().contains("do not serve"),
            "{path} leaked: {} {}",
            r.status,
            r.text()
        );
        assert_ne!(r.status, 200, "{path}");
    }
}

#[test]
fn symlinks_follow_the_options() {
    // Options None at / leaves FollowSymLinks off: the link out of the tree is refused.
    let s = site("files-nolink", "");
    assert_eq!(get(&s, "/link.txt").status, 403);
    // An index file that is a link is not served either.
    let idx = s.dir.0.join("www/linkidx");
    std::fs::create_dir_all(&idx).unwrap();
    symlink(s.dir.0.join("outside/passwd"), idx.join("index.html")).unwrap();
    let r = get(&s, "/linkidx/");
    assert!(
        r.status == 403 && !r.text().contains("root:x"),
        "{} {}",
        r.status,
        r.text()
    );
    // With FollowSymLinks (Apache's default when no Options says otherwise) it is followed.
    let s = site(
        "files-link",
        "<Directory {ROOT}>\n  Options FollowSymLinks\n</Directory>\n",
    );
    let r = get(&s, "/link.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "root:x:0:0\n"));
}

#[test]
fn header_rules_apply_to_files_as_mod_headers_does() {
    let s = site(
        "files-headers",
        "Header always set X-Frame-Options DENY\nHeader set Cache-Control \"max-age=60\"\nHeader unset Accept-Ranges\n",
    );
    let r = get(&s, "/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("cache-control").as_deref(), Some("max-age=60"));
    assert_eq!(r.header("accept-ranges"), None);
    assert_eq!(r.text(), "body{}\n");
    let etag = r.header("etag").unwrap();
    let r = request(
        &s,
        &format!("GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    // The member's answers get them too, as before.
    let r = get(&s, "/app/x");
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
}
