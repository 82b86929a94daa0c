//! A bounded reader of server-sent events (the streaming format of both provider wires).
//!
//! Every read is capped: a line longer than `max_line_bytes`, a stream larger than
//! `max_stream_bytes` or silence longer than `idle` ends the stream with an error instead of
//! buffering or waiting without limit.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::{EventStream, ProviderError, ReadLimits, StreamEvent};

/// One dispatched event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// The line-level parser, independent of I/O (unit tested and fuzzed on its own).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    max_line: usize,
}

impl SseParser {
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            ..Self::default()
        }
    }

    /// Feeds bytes; pushes every event completed by them.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        let mut rest = chunk;
        while let Some(pos) = memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(pos);
            rest = &tail[1..];
            if self.buf.len() + line.len() > self.max_line {
                return Err(self.too_long());
            }
            self.buf.extend_from_slice(line);
            let line = std::mem::take(&mut self.buf);
            self.line(&line, out);
        }
        if self.buf.len() + rest.len() > self.max_line {
            return Err(self.too_long());
        }
        self.buf.extend_from_slice(rest);
        Ok(())
    }

    /// End of input: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn too_long(&self) -> ProviderError {
        ProviderError::TooLarge(format!(
            "a line of the event stream is longer than {} bytes",
            self.max_line
        ))
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(raw);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.data.is_empty() {
            self.event = None;
            return;
        }
        out.push(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        });
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// Reads events from a response body under [`ReadLimits`].
pub struct SseReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
    limits: ReadLimits,
    received: usize,
    ended: bool,
}

impl SseReader {
    pub fn new(resp: reqwest::Response, limits: ReadLimits) -> Self {
        Self {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::new(limits.max_line_bytes),
            ready: Default::default(),
            limits,
            received: 0,
            ended: false,
        }
    }

    /// The next event; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<SseEvent, ProviderError>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(Ok(e));
            }
            if self.ended {
                return None;
            }
            let chunk = match tokio::time::timeout(self.limits.idle, self.body.next()).await {
                Err(_) => {
                    self.ended = true;
                    return Some(Err(ProviderError::Timeout(self.limits.idle.as_secs())));
                }
                Ok(None) => {
                    self.ended = true;
                    let mut out = Vec::new();
                    self.parser.finish(&mut out);
                    self.ready.extend(out);
                    continue;
                }
                Ok(Some(Err(e))) => {
                    self.ended = true;
                    return Some(Err(ProviderError::Network(e.without_url().to_string())));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            self.received += chunk.len();
            if self.received > self.limits.max_stream_bytes {
                self.ended = true;
                return Some(Err(ProviderError::TooLarge(format!(
                    "more than {} bytes streamed",
                    self.limits.max_stream_bytes
                ))));
            }
            let mut out = Vec::new();
            if let Err(e) = self.parser.feed(&chunk, &mut out) {
                self.ended = true;
                return Some(Err(e));
            }
            self.ready.extend(out);
        }
    }
}

/// Turns one wire's events into [`StreamEvent`]s. Pure, so each wire's parser is unit tested
/// (and fuzzed) without a server.
pub trait WireParser: Send + 'static {
    /// One event of the stream.
    fn feed(&mut self, event: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError>;
    /// The wire's end-of-answer marker was seen: nothing more is read.
    fn is_done(&self) -> bool;
    /// The body ended (or the end marker was seen): close open blocks, or fail when the answer
    /// is incomplete.
    fn finish(&mut self) -> Result<Vec<StreamEvent>, ProviderError>;
}

/// The provider stream of one answer: SSE events through `parser`, ending after `finish`.
pub fn events<P: WireParser>(reader: SseReader, parser: P) -> EventStream {
    struct State<P> {
        reader: SseReader,
        parser: P,
        queue: std::collections::VecDeque<Result<StreamEvent, ProviderError>>,
        finished: bool,
    }
    let state = State {
        reader,
        parser,
        queue: Default::default(),
        finished: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.queue.pop_front() {
                if item.is_err() {
                    st.queue.clear();
                    st.finished = true;
                }
                return Some((item, st));
            }
            if st.finished {
                return None;
            }
            let next = if st.parser.is_done() {
                None
            } else {
                st.reader.next().await
            };
            match next {
                Some(Ok(event)) => match st.parser.feed(&event) {
                    Ok(events) => st.queue.extend(events.into_iter().map(Ok)),
                    Err(e) => st.queue.push_back(Err(e)),
                },
                Some(Err(e)) => st.queue.push_back(Err(e)),
                None => {
                    st.finished = true;
                    match st.parser.finish() {
                        Ok(events) => st.queue.extend(events.into_iter().map(Ok)),
                        Err(e) => st.queue.push_back(Err(e)),
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, ProviderError> {
        let mut p = SseParser::new(64);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        p.finish(&mut out);
        Ok(out)
    }

    #[test]
    fn splits_events_across_chunks() {
        let events = parse(&[
            b"event: message_start\r\nda",
            b"ta: {\"a\":1}\n\n: keep-alive\n\ndata: x\ndata: y\n\ndata: [DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "x\ny".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn refuses_an_endless_line() {
        let long = vec![b'a'; 40];
        let err = parse(&[b"data: ", &long, &long]).unwrap_err();
        assert!(matches!(err, ProviderError::TooLarge(_)), "{err:?}");
        assert!(parse(&[b"data: ", &long, b"\n\n"]).is_ok());
    }
}
