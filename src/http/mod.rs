//! HTTP/1.1 codec: heads ([`head`]), body framing ([`body`]) and forwarded heads
//! ([`write`]). Nothing here does I/O.

pub mod authority;
pub mod body;
pub mod head;
pub mod headers;
pub mod message;
pub mod relay;
pub mod write;
