//! HTTP on the client side. Without I/O: the HTTP/1.1 codec (heads in [`head`], body
//! framing in [`body`], forwarded heads in [`write`]), the protocol-neutral header list
//! ([`message`]) that forwarding edits, mod_headers rules ([`headers`]), authorities
//! ([`authority`]) and RequestReadTimeout's deadlines ([`reqtimeout`]). With I/O: the
//! connection loop ([`server`]) and moving bodies between streams ([`relay`]). An HTTP/2
//! server would sit beside [`server`], filling the same [`message::Headers`].

pub mod authority;
pub mod body;
pub mod head;
pub mod headers;
pub mod message;
pub mod relay;
pub mod reqtimeout;
pub mod server;
pub mod write;
