//! What the stand-in model says next. It keeps no state: every request carries the whole
//! conversation, so the next move is read from what the agent already did since the last user
//! message — write a note, read it back, (with a working sandbox) count its words with `bash`,
//! then answer in text that quotes what the tools returned.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Where the note goes, relative to the conversation's workspace.
pub const NOTE_PATH: &str = "chatons-demo/hello.md";

/// A tool call the agent made in this turn and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDone {
    pub name: String,
    pub result: String,
}

/// The conversation since its last user message, as either wire carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnSoFar {
    pub prompt: String,
    pub done: Vec<ToolDone>,
}

/// The stand-in's next answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A short text, then one tool call.
    Call {
        text: Option<String>,
        name: String,
        args: Value,
    },
    /// The final text (streamed in pieces by the wire).
    Answer(String),
}

/// A short marker derived from the prompt: written into the note, looked for in what `read`
/// returns, so the answer can only claim the round trip when the file really held it.
pub fn marker(prompt: &str) -> String {
    let digest = Sha256::digest(prompt.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn note(prompt: &str) -> String {
    format!(
        "# Hello from the Chatons demo\n\nPrompt: {}\nMarker: {}\n",
        prompt.lines().next().unwrap_or_default(),
        marker(prompt)
    )
}

/// The calls of a turn, in order, as far as the offered tools allow. `bash` only when the
/// server was told the sandbox works (bubblewrap present).
fn plan(offered: &[String], bash: bool) -> Vec<(&'static str, Value)> {
    let has = |n: &str| offered.iter().any(|o| o == n);
    let mut calls = Vec::new();
    if !has("write") {
        return calls;
    }
    calls.push(("write", json!({"path": NOTE_PATH, "content": ""})));
    if has("read") {
        calls.push(("read", json!({"path": NOTE_PATH})));
    } else if has("ls") {
        calls.push(("ls", json!({"path": "chatons-demo"})));
    }
    if bash && has("bash") {
        calls.push(("bash", json!({"command": format!("wc -w {NOTE_PATH}")})));
    }
    calls
}

/// Decides the next answer from the turn so far and the tools the request offers.
pub fn next(turn: &TurnSoFar, offered: &[String], bash: bool) -> Next {
    let calls = plan(offered, bash);
    if let Some((name, mut args)) = calls.get(turn.done.len()).cloned() {
        if name == "write" {
            args["content"] = json!(note(&turn.prompt));
        }
        let text = turn.done.is_empty().then(|| {
            format!("I'll write a short note to `{NOTE_PATH}` in this conversation's workspace, then check it. ")
        });
        return Next::Call {
            text,
            name: name.to_owned(),
            args,
        };
    }
    Next::Answer(answer(turn, !calls.is_empty()))
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or_default();
    match line.char_indices().nth(120) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

fn answer(turn: &TurnSoFar, had_tools: bool) -> String {
    let mut out = String::new();
    if !had_tools {
        out.push_str(
            "This project is chat-only, so no workspace tools were offered and I answered \
             straight away. ",
        );
    }
    for t in &turn.done {
        match t.name.as_str() {
            "write" => out.push_str(&format!("I wrote `{NOTE_PATH}`. ")),
            "read" | "ls" => {
                let m = marker(&turn.prompt);
                if t.result.contains(&m) {
                    out.push_str(&format!(
                        "Reading it back shows `Marker: {m}`, exactly as written, so the file \
                         really is in the workspace. "
                    ));
                } else if t.name == "ls" && t.result.contains("hello.md") {
                    out.push_str("Listing the folder shows `hello.md`, so the file is there. ");
                } else {
                    out.push_str(&format!(
                        "Reading it back did not show what I wrote; the tool said: \"{}\". ",
                        first_line(&t.result)
                    ));
                }
            }
            "bash" => out.push_str(&format!(
                "In the sandbox, `wc -w` says: \"{}\". ",
                first_line(t.result.trim())
            )),
            _ => {}
        }
    }
    out.push_str(&format!(
        "You asked: \"{}\" — this answer comes from the local stand-in model, streamed piece \
         by piece through runtime-headless and cloud-realtime, the way the desktop shows it.",
        first_line(&turn.prompt)
    ));
    out
}

/// Splits text into pieces of about `words` words (each keeps its trailing space), so the
/// concatenation is the text itself.
pub fn pieces(text: &str, words: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut count = 0;
    for (i, c) in text.char_indices() {
        current.push(c);
        let at_word_end = c == ' ' && text[i + 1..].chars().next().is_some_and(|n| n != ' ');
        if at_word_end {
            count += 1;
            if count == words.max(1) {
                out.push(std::mem::take(&mut current));
                count = 0;
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn done(name: &str, result: &str) -> ToolDone {
        ToolDone {
            name: name.into(),
            result: result.into(),
        }
    }

    #[test]
    fn writes_then_reads_then_answers_with_what_it_read() {
        let offered = tools(&["read", "ls", "write", "bash"]);
        let mut turn = TurnSoFar {
            prompt: "Show me a tool".into(),
            done: vec![],
        };
        let Next::Call { text, name, args } = next(&turn, &offered, false) else {
            panic!("a call first")
        };
        assert_eq!(name, "write");
        assert!(text.is_some());
        let content = args["content"].as_str().unwrap();
        let m = marker("Show me a tool");
        assert!(content.contains(&m), "{content}");

        turn.done.push(done("write", "Wrote 60 bytes"));
        let Next::Call { text, name, args } = next(&turn, &offered, false) else {
            panic!("then read")
        };
        assert_eq!((name.as_str(), text), ("read", None));
        assert_eq!(args["path"], NOTE_PATH);

        turn.done.push(done("read", content));
        let Next::Answer(a) = next(&turn, &offered, false) else {
            panic!("then the answer")
        };
        assert!(
            a.contains(&format!("Marker: {m}`, exactly as written")),
            "{a}"
        );
    }

    #[test]
    fn a_read_without_the_marker_is_reported_not_hidden() {
        let turn = TurnSoFar {
            prompt: "p".into(),
            done: vec![done("write", "ok"), done("read", "No such file")],
        };
        let Next::Answer(a) = next(&turn, &tools(&["read", "write"]), false) else {
            panic!("answer")
        };
        assert!(a.contains("did not show what I wrote"), "{a}");
        assert!(a.contains("No such file"), "{a}");
    }

    #[test]
    fn bash_only_with_a_sandbox_and_chat_only_answers_at_once() {
        let offered = tools(&["read", "write", "bash"]);
        let turn = TurnSoFar {
            prompt: "p".into(),
            done: vec![done("write", "ok"), done("read", "x")],
        };
        assert!(matches!(next(&turn, &offered, false), Next::Answer(_)));
        assert!(matches!(next(&turn, &offered, true), Next::Call { name, .. } if name == "bash"));
        let chat = TurnSoFar {
            prompt: "p".into(),
            done: vec![],
        };
        let Next::Answer(a) = next(&chat, &[], true) else {
            panic!("answer")
        };
        assert!(a.starts_with("This project is chat-only"), "{a}");
    }

    #[test]
    fn pieces_add_up_to_the_text() {
        let text = "one two  three four five, six.";
        let p = pieces(text, 2);
        assert_eq!(p.concat(), text);
        assert_eq!(p[0], "one two  ");
        assert!(p.len() >= 3);
        assert_eq!(pieces("", 3), Vec::<String>::new());
    }
}
