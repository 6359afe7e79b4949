//! The HTTP side of the pages ringproxy serves itself (`SetHandler server-status`,
//! `metrics`, `balancer-manager`): reading a manager form, answering, accounting for the
//! answer as for a proxied request. What the pages say is in the modules beside this one.

use tracing::warn;

use crate::admin;
use crate::config::Handler;
use crate::error::{ErrorKind, ProxyError};
use crate::http::head::RequestBody;
use crate::http::server::{send_local, ClientConn, Local, RequestCtx};
use crate::proxy::client_may_keep;
use crate::runtime::CoreGen;

/// A manager answer: status, content type, body, and where a 303 sends the browser.
type Answer = (u16, &'static str, String, Option<String>);

/// A change posted to the balancer-manager: the form (small, read whole), the same-host
/// check against cross-site requests, then the change.
async fn manager_change(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    wants_json: bool,
    path: &str,
) -> Result<Answer, ProxyError> {
    let shared = &w.shared;
    let end = read_form(w, c, r).await?;
    let same_host = admin::manager::same_host(
        r.head.header_texts(&c.buf, b"host").next(),
        r.head.header_texts(&c.buf, b"referer").next(),
        r.head.header_texts(&c.buf, b"origin").next(),
    );
    if !same_host {
        warn!(
            "balancer-manager: change from {} refused: Referer/Origin is not this host",
            c.peer_ip
        );
        let text = "403 Forbidden: Referer or Origin must name this host\n".to_string();
        return Ok((403, "text/plain", text, None));
    }
    let form = admin::manager::parse_form(&c.buf[r.head.len..end]);
    // A member's name is looked up on the resolver pool, never on this event loop.
    let addr = match admin::manager::new_member_host(&form) {
        Some((host, port)) => crate::runtime::dns::resolve(&host, port).await,
        None => None,
    };
    Ok(
        match admin::manager::apply(shared, &c.peer_ip, &form, addr) {
            Ok(_) if wants_json => (
                200,
                "application/json",
                admin::manager::state_json(shared),
                None,
            ),
            Ok(_) => (
                303,
                "text/plain",
                "changed\n".to_string(),
                Some(path.to_string()),
            ),
            Err((status, msg)) => {
                warn!("balancer-manager: change from {} refused: {msg}", c.peer_ip);
                let text = format!("{status} {}\n", admin::escape(&msg));
                (status, "text/plain", text, None)
            }
        },
    )
}

/// Reads a posted form whole into the client buffer (at most MAX_FORM); returns where it
/// ends there.
async fn read_form(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
) -> Result<usize, ProxyError> {
    let len = match r.head.body() {
        RequestBody::Length(n) if n <= MAX_FORM => n as usize,
        RequestBody::None => 0,
        _ => {
            return Err(ErrorKind::BadHead(crate::http::head::HeadError::Malformed(
                "balancer-manager takes a form of at most 64 KiB",
            ))
            .into())
        }
    };
    let end = r.head.len + len;
    let t = w.shared.cfg.core.timeout;
    while c.buf.len() < end {
        let buf = std::mem::take(&mut c.buf);
        let (res, buf) = crate::transport::io::read_more(&mut c.stream, buf, len, t).await;
        c.buf = buf;
        match res {
            Ok(0) => return Err(ErrorKind::ClientClosed.into()),
            Ok(_) => {}
            Err(e) => return Err(ErrorKind::client(e).into()),
        }
    }
    r.consumed = end;
    Ok(end)
}

/// Answers a `SetHandler` location (server-status, metrics, balancer-manager) from this
/// process. Returns whether the client connection stays.
pub async fn answer(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    vh: &crate::config::VirtualHost,
    handler: Handler,
) -> Result<bool, ProxyError> {
    let shared = &w.shared;
    let query = match r.head.target_parts(&c.buf) {
        (_, Some(q)) => &c.buf[q],
        (_, None) => b"",
    };
    let name = shared.cfg.server_name_of(vh);
    let (ctype, body) = match handler {
        Handler::ServerStatus => {
            let auto = query.split(|&b| b == b'&').any(|q| q == b"auto");
            admin::server_status(shared, auto, name)
        }
        Handler::Metrics => admin::metrics(shared),
        Handler::BalancerManager => return balancer_manager(w, c, r, query.to_vec()).await,
    };
    // These pages take no request body; one that came with a body closes the connection
    // rather than reading it.
    let core = &shared.cfg.core;
    let keep = client_may_keep(w, c, r) && r.head.body() == RequestBody::None;
    r.consumed = r.head.len;
    let extra = "Cache-Control: no-store\r\n";
    let page = Local {
        status: 200,
        ctype,
        body: body.as_bytes(),
        extra,
        keep,
        head_only: false,
        rules: &vh.response_headers,
    };
    send_local(c, r, &page, core.timeout).await?;
    Ok(keep)
}

/// Largest form a balancer-manager POST may send.
const MAX_FORM: u64 = 64 * 1024;

/// balancer-manager: GET shows the page (or JSON with `?json` / `Accept: application/json`),
/// POST applies changes (nonce and same-host Referer/Origin required).
async fn balancer_manager(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    query: Vec<u8>,
) -> Result<bool, ProxyError> {
    let shared = &w.shared;
    let core = &shared.cfg.core;
    let wants_json = query.split(|&b| b == b'&').any(|q| q == b"json")
        || r.head
            .header_texts(&c.buf, b"accept")
            .next()
            .is_some_and(|a| a.contains("application/json"));
    let path = String::from_utf8_lossy(&c.buf[r.head.target_parts(&c.buf).0]).into_owned();
    let post = r.head.method(&c.buf) == b"POST";
    let (status, ctype, body, location) = if post {
        manager_change(w, c, r, wants_json, &path).await?
    } else if wants_json {
        r.consumed = r.head.len;
        let json = admin::manager::state_json(shared);
        (200, "application/json", json, None)
    } else {
        r.consumed = r.head.len;
        let html = admin::manager::page(shared, &path);
        (200, "text/html; charset=utf-8", html, None)
    };
    let keep = client_may_keep(w, c, r);
    let mut extra = String::from("Cache-Control: no-store\r\nX-Frame-Options: DENY\r\n");
    if let Some(l) = location {
        extra.push_str(&format!("Location: {l}\r\n"));
    }
    let page = Local {
        status,
        ctype,
        body: body.as_bytes(),
        extra: &extra,
        keep,
        head_only: false,
        rules: &shared.cfg.vhosts[r.vhost].response_headers,
    };
    send_local(c, r, &page, core.timeout).await?;
    Ok(keep)
}
