//! `find` (glob) and `grep` (regular expression) over the workspace. The walk never follows a
//! symbolic link and skips `.git`; it visits a bounded number of entries so a huge tree cannot
//! hold a call forever.

use std::io::Read;
use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};
use serde_json::{Value, json};

use super::{ToolContext, ToolOutput, opt_str, opt_u64, str_arg};
use crate::provider::ToolSpec;

const MAX_VISITED: usize = 200_000;
const MAX_FIND_RESULTS: usize = 1000;
const DEFAULT_GREP_MATCHES: usize = 100;
const MAX_GREP_FILE_BYTES: u64 = 4 * 1024 * 1024;
const MAX_GREP_LINE_CHARS: usize = 500;

pub fn find_spec() -> ToolSpec {
    ToolSpec {
        name: "find".into(),
        description: "Find files by glob pattern (`*`, `?`, `**`, `{a,b}`). A pattern without \
            `/` matches file names anywhere; with `/` it matches paths relative to the search \
            directory."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Glob, e.g. *.rs or src/**/*.ts"},
                "path": {"type": "string", "description": "Directory to search (default: the workspace)"}
            },
            "required": ["pattern"]
        }),
    }
}

pub fn grep_spec() -> ToolSpec {
    ToolSpec {
        name: "grep".into(),
        description: "Search file contents with a regular expression; prints path:line: text."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Regular expression (or text with literal=true)"},
                "path": {"type": "string", "description": "File or directory to search (default: the workspace)"},
                "glob": {"type": "string", "description": "Only files whose name matches this glob"},
                "ignoreCase": {"type": "boolean"},
                "literal": {"type": "boolean", "description": "Treat pattern as plain text"},
                "limit": {"type": "integer", "minimum": 1, "description": "Most matches to show (default 100)"}
            },
            "required": ["pattern"]
        }),
    }
}

/// A glob as an anchored regular expression.
pub fn glob_regex(glob: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    let mut in_group = false;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '{' if !in_group => {
                in_group = true;
                re.push_str("(?:");
            }
            '}' if in_group => {
                in_group = false;
                re.push(')');
            }
            ',' if in_group => re.push('|'),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    if in_group {
        return Err(format!("unclosed {{ in glob {glob:?}"));
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

/// Regular files under `dir`, depth first in name order, bounded by [`MAX_VISITED`].
fn walk(dir: &Path, mut visit: impl FnMut(&Path) -> bool) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut children: Vec<(PathBuf, std::fs::FileType)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_type().ok().map(|t| (e.path(), t)))
            .collect();
        children.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, kind) in children {
            visited += 1;
            if visited > MAX_VISITED {
                return false;
            }
            if kind.is_dir() {
                if path.file_name().is_some_and(|n| n != ".git") {
                    stack.push(path);
                }
            } else if kind.is_file() && !visit(&path) {
                return true;
            }
        }
    }
    true
}

fn search_root(ctx: &ToolContext, args: &Value) -> Result<PathBuf, ToolOutput> {
    let raw = opt_str(args, "path").unwrap_or(".");
    ctx.workspace
        .resolve(raw)
        .map_err(|e| ToolOutput::error(e.to_string()))
}

pub fn find(ctx: &ToolContext, args: &Value) -> ToolOutput {
    let pattern = match str_arg(args, "pattern") {
        Ok(p) => p.trim(),
        Err(out) => return out,
    };
    let re = match glob_regex(pattern) {
        Ok(r) => r,
        Err(e) => return ToolOutput::error(e),
    };
    let root = match search_root(ctx, args) {
        Ok(r) => r,
        Err(out) => return out,
    };
    let by_name = !pattern.contains('/');
    let mut found = Vec::new();
    let complete = walk(&root, |path| {
        let rel = path.strip_prefix(&root).unwrap_or(path);
        let subject = if by_name {
            rel.file_name().map(|n| n.to_string_lossy().into_owned())
        } else {
            Some(rel.to_string_lossy().into_owned())
        };
        if subject.is_some_and(|s| re.is_match(&s)) {
            found.push(ctx.workspace.display(path));
        }
        found.len() < MAX_FIND_RESULTS
    });
    if found.is_empty() {
        return ToolOutput::ok(format!("No files match {pattern}."));
    }
    let mut text = found.join("\n");
    if found.len() >= MAX_FIND_RESULTS {
        text.push_str(&format!("\n[Stopped after {MAX_FIND_RESULTS} results.]"));
    } else if !complete {
        text.push_str("\n[The tree is too large: not every file was searched.]");
    }
    ToolOutput::ok(text)
}

pub fn grep(ctx: &ToolContext, args: &Value) -> ToolOutput {
    let pattern = match str_arg(args, "pattern") {
        Ok(p) => p,
        Err(out) => return out,
    };
    let literal = args.get("literal").and_then(Value::as_bool) == Some(true);
    let source = if literal {
        regex::escape(pattern)
    } else {
        pattern.to_owned()
    };
    let re = match RegexBuilder::new(&source)
        .case_insensitive(args.get("ignoreCase").and_then(Value::as_bool) == Some(true))
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => return ToolOutput::error(format!("Invalid regular expression: {e}")),
    };
    let name_filter = match opt_str(args, "glob").map(glob_regex).transpose() {
        Ok(f) => f,
        Err(e) => return ToolOutput::error(e),
    };
    let root = match search_root(ctx, args) {
        Ok(r) => r,
        Err(out) => return out,
    };
    let limit = opt_u64(args, "limit")
        .map(|l| l as usize)
        .unwrap_or(DEFAULT_GREP_MATCHES)
        .clamp(1, 1000);
    let mut lines_out = Vec::new();
    let mut search_file = |path: &Path| -> bool {
        if let Some(f) = &name_filter
            && !path
                .file_name()
                .is_some_and(|n| f.is_match(&n.to_string_lossy()))
        {
            return true;
        }
        let mut bytes = Vec::new();
        let Ok(file) = std::fs::File::open(path) else {
            return true;
        };
        if file
            .take(MAX_GREP_FILE_BYTES)
            .read_to_end(&mut bytes)
            .is_err()
            || bytes.iter().take(8192).any(|b| *b == 0)
        {
            return true;
        }
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            if re.is_match(line) {
                let shown: String = line.chars().take(MAX_GREP_LINE_CHARS).collect();
                lines_out.push(format!(
                    "{}:{}: {shown}",
                    ctx.workspace.display(path),
                    n + 1
                ));
                if lines_out.len() >= limit {
                    return false;
                }
            }
        }
        true
    };
    let complete = if std::fs::metadata(&root).is_ok_and(|m| m.is_file()) {
        search_file(&root);
        true
    } else {
        walk(&root, search_file)
    };
    if lines_out.is_empty() {
        return ToolOutput::ok("No matches.");
    }
    let mut text = lines_out.join("\n");
    if lines_out.len() >= limit {
        text.push_str(&format!("\n[Stopped after {limit} matches.]"));
    } else if !complete {
        text.push_str("\n[The tree is too large: not every file was searched.]");
    }
    ToolOutput::ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |g: &str, s: &str| glob_regex(g).unwrap().is_match(s);
        assert!(m("*.rs", "main.rs"));
        assert!(!m("*.rs", "src/main.rs"));
        assert!(m("src/**/*.ts", "src/a/b/c.ts"));
        assert!(m("src/**/*.ts", "src/c.ts"));
        assert!(m("*.{js,ts}", "x.ts"));
        assert!(m("a?c", "abc"));
        assert!(!m("a.c", "abc"));
        assert!(glob_regex("{a,b").is_err());
    }
}
