//! RFC 6455 framing, server side: frames this server sends (unmasked, never fragmented) and a
//! decoder for what clients send (masked, possibly fragmented).
//!
//! Why not a websocket library: every live event goes to many sockets, and its frame is the
//! same bytes for all of them (server frames are not masked). Building the frame once per event
//! and writing that shared buffer to each socket, with no per-socket codec state or buffers,
//! is what keeps a delivery to a few hundred nanoseconds of user time and an idle socket small.
//! The protocol surface a server needs is small: the handshake (`ws.rs`), these frames, and
//! answering ping and close.

use bytes::{BufMut, Bytes, BytesMut};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes a decoding failure maps to.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Length of the header of an unmasked frame carrying `len` payload bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Writes the header of a FIN, unmasked frame.
pub fn put_header(out: &mut BytesMut, opcode: u8, len: usize) {
    out.put_u8(0x80 | opcode);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// One complete (FIN) unmasked frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out.freeze()
}

pub fn text(payload: &str) -> Bytes {
    frame(OP_TEXT, payload.as_bytes())
}

/// A close frame; control frames carry at most 125 bytes, so the reason is cut to fit.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(OP_CLOSE, &payload)
}

/// A message received from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary,
    Ping(Bytes),
    Pong,
    /// The close code the client gave, if any.
    Close(Option<u16>),
}

/// Why the client's byte stream is not acceptable; the socket is closed with [`Self::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Protocol(&'static str),
    TooBig,
    InvalidUtf8,
}

impl DecodeError {
    pub fn code(self) -> u16 {
        match self {
            Self::Protocol(_) => CLOSE_PROTOCOL_ERROR,
            Self::TooBig => CLOSE_TOO_BIG,
            Self::InvalidUtf8 => CLOSE_INVALID_DATA,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Protocol(why) => why,
            Self::TooBig => "message_too_big",
            Self::InvalidUtf8 => "invalid_utf8",
        }
    }
}

/// Incremental decoder of client frames. Holds no allocation while nothing is half-received, so
/// an idle socket costs nothing here.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Opcode and payload of a fragmented data message being assembled.
    partial: Option<(u8, Vec<u8>)>,
    max_message: usize,
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            partial: None,
            max_message,
        }
    }

    /// Appends bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        // A frame is at most 14 header bytes plus the largest message.
        if self.buf.len() + data.len() > self.max_message + 14 {
            return Err(DecodeError::TooBig);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, DecodeError> {
        loop {
            let Some((fin, opcode, payload)) = self.take_frame()? else {
                if self.buf.is_empty() && self.buf.capacity() > 0 {
                    self.buf = Vec::new();
                }
                return Ok(None);
            };
            match opcode {
                OP_CLOSE => {
                    if payload.len() == 1 {
                        return Err(DecodeError::Protocol("bad_close_frame"));
                    }
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Incoming::Close(code)));
                }
                OP_PING => return Ok(Some(Incoming::Ping(Bytes::from(payload)))),
                OP_PONG => return Ok(Some(Incoming::Pong)),
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(DecodeError::Protocol("expected_continuation"));
                    }
                    if fin {
                        return finish(opcode, payload).map(Some);
                    }
                    self.partial = Some((opcode, payload));
                }
                OP_CONTINUATION => {
                    let Some((op, mut assembled)) = self.partial.take() else {
                        return Err(DecodeError::Protocol("unexpected_continuation"));
                    };
                    if assembled.len() + payload.len() > self.max_message {
                        return Err(DecodeError::TooBig);
                    }
                    assembled.extend_from_slice(&payload);
                    if fin {
                        return finish(op, assembled).map(Some);
                    }
                    self.partial = Some((op, assembled));
                }
                _ => return Err(DecodeError::Protocol("unknown_opcode")),
            }
        }
    }

    /// One whole frame off the front of the buffer, unmasked.
    fn take_frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, DecodeError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Err(DecodeError::Protocol("reserved_bits"));
        }
        let opcode = b[0] & 0x0F;
        if b[1] & 0x80 == 0 {
            return Err(DecodeError::Protocol("unmasked_client_frame"));
        }
        let (len, mut at) = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        let control = opcode & 0x8 != 0;
        if control && (len > 125 || !fin) {
            return Err(DecodeError::Protocol("bad_control_frame"));
        }
        if len > self.max_message as u64 {
            return Err(DecodeError::TooBig);
        }
        let len = len as usize;
        if b.len() < at + 4 + len {
            return Ok(None);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        at += 4;
        let mut payload = b[at..at + len].to_vec();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        self.buf.drain(..at + len);
        Ok(Some((fin, opcode, payload)))
    }
}

fn finish(opcode: u8, payload: Vec<u8>) -> Result<Incoming, DecodeError> {
    if opcode == OP_BINARY {
        return Ok(Incoming::Binary);
    }
    String::from_utf8(payload)
        .map(Incoming::Text)
        .map_err(|_| DecodeError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a client library would send it.
    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    #[test]
    fn server_frames_have_the_shortest_length_encoding() {
        assert_eq!(&text("hi")[..], &[0x81, 2, b'h', b'i']);
        let f = text(&"a".repeat(126));
        assert_eq!(&f[..4], &[0x81, 126, 0, 126]);
        assert_eq!(f.len(), 130);
        let f = frame(OP_BINARY, &vec![0; 70_000]);
        assert_eq!(&f[..2], &[0x82, 127]);
        assert_eq!(u64::from_be_bytes(f[2..10].try_into().unwrap()), 70_000);
        assert_eq!(header_len(70_000), 10);
        let c = close(4008, "slow_consumer");
        assert_eq!(&c[..4], &[0x88, 15, 0x0F, 0xA8]);
        assert_eq!(close(1000, &"é".repeat(100)).len(), 2 + 2 + 122);
    }

    #[test]
    fn decodes_split_and_fragmented_messages() {
        let mut d = Decoder::new(1024);
        let bytes = masked(true, OP_TEXT, br#"{"type":"resume"}"#);
        d.feed(&bytes[..3]).unwrap();
        assert_eq!(d.next_message(), Ok(None));
        d.feed(&bytes[3..]).unwrap();
        assert_eq!(
            d.next_message(),
            Ok(Some(Incoming::Text(r#"{"type":"resume"}"#.into())))
        );
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.buf.capacity(), 0, "nothing held between messages");

        let mut all = masked(false, OP_TEXT, b"hel");
        all.extend(masked(true, OP_PING, b"p"));
        all.extend(masked(true, OP_CONTINUATION, b"lo"));
        all.extend(masked(true, OP_PONG, b""));
        all.extend(masked(true, OP_CLOSE, &1000u16.to_be_bytes()));
        d.feed(&all).unwrap();
        assert_eq!(
            d.next_message(),
            Ok(Some(Incoming::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(d.next_message(), Ok(Some(Incoming::Text("hello".into()))));
        assert_eq!(d.next_message(), Ok(Some(Incoming::Pong)));
        assert_eq!(d.next_message(), Ok(Some(Incoming::Close(Some(1000)))));
        let mut d = Decoder::new(100_000);
        d.feed(&masked(true, OP_TEXT, "x".repeat(300).as_bytes()))
            .unwrap();
        assert_eq!(d.next_message(), Ok(Some(Incoming::Text("x".repeat(300)))));
        d.feed(&masked(true, OP_BINARY, &[0; 70_000])).unwrap();
        assert_eq!(d.next_message(), Ok(Some(Incoming::Binary)));
    }

    #[test]
    fn rejects_what_the_rfc_forbids() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (vec![0x81, 0x02, b'h', b'i'], CLOSE_PROTOCOL_ERROR), // unmasked
            (
                {
                    let mut f = masked(true, OP_TEXT, b"x");
                    f[0] |= 0x40;
                    f
                },
                CLOSE_PROTOCOL_ERROR,
            ),
            (masked(true, OP_CONTINUATION, b"x"), CLOSE_PROTOCOL_ERROR),
            (masked(false, OP_PING, b"x"), CLOSE_PROTOCOL_ERROR),
            (masked(true, OP_PING, &[0; 126]), CLOSE_PROTOCOL_ERROR),
            (masked(true, 0x3, b""), CLOSE_PROTOCOL_ERROR),
            (masked(true, OP_CLOSE, b"x"), CLOSE_PROTOCOL_ERROR),
            (masked(true, OP_TEXT, &[0xFF, 0xFE]), CLOSE_INVALID_DATA),
            (masked(true, OP_TEXT, &[b'a'; 200]), CLOSE_TOO_BIG),
            (
                {
                    let mut f = masked(false, OP_TEXT, &[b'a'; 80]);
                    f.extend(masked(true, OP_CONTINUATION, &[b'a'; 80]));
                    f
                },
                CLOSE_TOO_BIG,
            ),
            (
                {
                    let mut f = masked(false, OP_TEXT, b"a");
                    f.extend(masked(true, OP_TEXT, b"b"));
                    f
                },
                CLOSE_PROTOCOL_ERROR,
            ),
        ];
        for (bytes, code) in cases {
            let mut d = Decoder::new(150);
            let got = d.feed(&bytes).and_then(|()| {
                loop {
                    match d.next_message() {
                        Ok(Some(_)) => continue,
                        other => break other.map(|_| ()),
                    }
                }
            });
            assert_eq!(got.map_err(DecodeError::code), Err(code), "{bytes:?}");
        }
        // A length header larger than the limit is refused before its payload arrives.
        let mut d = Decoder::new(100);
        d.feed(&[0x81, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!(d.next_message(), Err(DecodeError::TooBig));
        assert_eq!(Decoder::new(10).feed(&[0; 100]), Err(DecodeError::TooBig));
    }
}
