//! AJP packets: what a container sends decodes without a panic and never past its input;
//! a forwarded request built from arbitrary fields either fits its packet and decodes back
//! to the same fields, or is refused whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::upstream::ajp::codec::{
    decode, decode_forward, encode_forward, Forward, Reply, DEFAULT_PACKET_SIZE, HEADER_LEN,
    MAX_PACKET_SIZE,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let size = if mode & 2 == 0 { DEFAULT_PACKET_SIZE } else { MAX_PACKET_SIZE };
    if mode & 1 == 0 {
        replies(rest, size);
    } else {
        forward(rest, size);
    }
});

/// Decodes packet after packet, as a session reads a response.
fn replies(mut buf: &[u8], size: usize) {
    while let Ok(Some((reply, used))) = decode(buf, size) {
        assert!(used >= HEADER_LEN && used <= buf.len() && used <= size);
        if let Reply::Body(b) = reply {
            assert!(b.len() < used);
        }
        buf = &buf[used..];
    }
}

/// Fields split from the input at NUL bytes.
fn forward(input: &[u8], size: usize) {
    let mut f = input.split(|b| *b == 0);
    let mut next = || f.next().unwrap_or_default();
    let (method, uri, addr, name, hname, hvalue, query, route) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    let headers: &[(&[u8], &[u8])] = &[(hname, hvalue)];
    let req = Forward {
        method,
        protocol: b"HTTP/1.1",
        uri,
        query: (!query.is_empty()).then_some(query),
        remote_addr: addr,
        server_name: name,
        server_port: 80,
        headers,
        route: (!route.is_empty()).then_some(route),
        ..Forward::default()
    };
    let mut out = Vec::new();
    if encode_forward(&req, &mut out, size).is_err() {
        assert!(out.is_empty());
        return;
    }
    assert!(out.len() <= size);
    let d = decode_forward(&out[HEADER_LEN..]).expect("what was encoded decodes");
    assert_eq!(d.method, method);
    assert_eq!(d.uri, uri);
    assert_eq!(d.server_name, name);
}
