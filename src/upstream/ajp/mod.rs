//! AJP/1.3 members (`ajp://`), as Apache's mod_proxy_ajp speaks to Tomcat. [`codec`] reads
//! and writes the packets without I/O; the session that drives them over a member
//! connection plugs into [`crate::upstream::UpstreamSession`] beside HTTP/1.1.

pub mod codec;
