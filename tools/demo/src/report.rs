//! What the demo prints: one line per step with the time since start and the step's own
//! duration, the streamed answer as it arrives, and the tool events. Colours only on a
//! terminal (and never with `NO_COLOR`), so captured output stays plain.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

pub struct Report {
    start: Instant,
    color: bool,
    /// A streamed text line is open (its newline is still owed).
    open_line: bool,
}

const GUTTER: &str = "            ";

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}

impl Report {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            open_line: false,
        }
    }

    pub fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn stamp(&self) -> String {
        self.paint(
            "2",
            &format!("{:>7.2}s", self.start.elapsed().as_secs_f64()),
        )
    }

    fn out(&mut self, line: &str) {
        self.close_line();
        println!("{line}");
    }

    /// Ends an open streamed line.
    pub fn close_line(&mut self) {
        if self.open_line {
            println!();
            self.open_line = false;
        }
    }

    pub fn title(&mut self, text: &str) {
        let t = self.paint("1", text);
        self.out(&t);
    }

    pub fn info(&mut self, text: &str) {
        self.out(&format!("{GUTTER}{text}"));
    }

    pub fn ok(&mut self, step: &str, detail: &str, took: Duration) {
        let line = format!(
            "{} {} {:<17} {detail} {}",
            self.stamp(),
            self.paint("32", "ok"),
            step,
            self.paint("2", &format!("({} ms)", took.as_millis()))
        );
        self.out(&line);
    }

    pub fn warn(&mut self, step: &str, detail: &str) {
        let line = format!(
            "{} {} {:<17} {detail}",
            self.stamp(),
            self.paint("33", "!!"),
            step
        );
        self.out(&line);
    }

    pub fn fail(&mut self, step: &str, detail: &str) {
        let line = format!(
            "{} {} {:<17} {detail}",
            self.stamp(),
            self.paint("31", "FAILED"),
            step
        );
        self.out(&line);
    }

    /// One event of the turn on its own line: `label` in colour `code`, then `text`.
    pub fn event(&mut self, code: &str, label: &str, text: &str) {
        let line = format!(
            "{}    {} {text}",
            self.stamp(),
            self.paint(code, &format!("{label:<11} |"))
        );
        self.out(&line);
    }

    /// Starts a streamed line (`label |`) that [`Report::stream`] continues.
    pub fn stream_start(&mut self, code: &str, label: &str) {
        self.close_line();
        print!(
            "{}    {} ",
            self.stamp(),
            self.paint(code, &format!("{label:<11} |"))
        );
        self.open_line = true;
        let _ = std::io::stdout().flush();
    }

    /// Streamed text as it arrives; newlines inside it continue under the same label.
    pub fn stream(&mut self, text: &str) {
        let indent = format!("\n{}| ", " ".repeat(24));
        print!("{}", text.replace('\n', &indent));
        let _ = std::io::stdout().flush();
    }

    pub fn summary(&mut self, ok: bool, text: &str) {
        let (code, word) = if ok {
            ("1;32", "demo ok")
        } else {
            ("1;31", "demo FAILED")
        };
        let line = format!("{}: {text}", self.paint(code, word));
        self.out("");
        self.out(&line);
    }
}

/// At most `max` characters of the first line of `s`, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    let more = s.lines().nth(1).is_some();
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None if more => format!("{line} …"),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clips_to_the_first_line() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("one\ntwo", 10), "one …");
        assert_eq!(clip("", 3), "");
    }
}
