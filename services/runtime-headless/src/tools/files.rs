//! `read`, `ls`, `write` and `edit`.

use std::io::Read;

use serde_json::{Value, json};

use super::{ToolContext, ToolOutput, opt_str, opt_u64, str_arg, truncate_head};
use crate::provider::ToolSpec;

/// Bytes of a file `read` looks at; larger files are read in windows (offset/limit).
const MAX_READ_BYTES: u64 = 8 * 1024 * 1024;
/// Largest file `write` creates and `edit` rewrites.
const MAX_WRITE_BYTES: usize = 8 * 1024 * 1024;
const MAX_LS_ENTRIES: usize = 500;

pub fn read_spec() -> ToolSpec {
    ToolSpec {
        name: "read".into(),
        description: "Read a text file of the workspace. Long files are shown in windows: \
            pass offset (first line, 1-based) and limit (number of lines) to see more."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path, relative to /workspace"},
                "offset": {"type": "integer", "minimum": 1, "description": "First line to show (1-based)"},
                "limit": {"type": "integer", "minimum": 1, "description": "Number of lines to show"}
            },
            "required": ["path"]
        }),
    }
}

pub fn ls_spec() -> ToolSpec {
    ToolSpec {
        name: "ls".into(),
        description: "List a directory of the workspace (directories end with /).".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Directory, relative to /workspace (default: the workspace)"}
            }
        }),
    }
}

pub fn write_spec() -> ToolSpec {
    ToolSpec {
        name: "write".into(),
        description: "Create or overwrite a file of the workspace with the given content \
            (parent directories are created)."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path, relative to /workspace"},
                "content": {"type": "string", "description": "The whole new content"}
            },
            "required": ["path", "content"]
        }),
    }
}

pub fn edit_spec() -> ToolSpec {
    ToolSpec {
        name: "edit".into(),
        description: "Replace one exact occurrence of oldText with newText in a file. oldText \
            must match exactly once (include surrounding lines to make it unique)."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path, relative to /workspace"},
                "oldText": {"type": "string", "description": "Exact text to replace"},
                "newText": {"type": "string", "description": "Replacement text"}
            },
            "required": ["path", "oldText", "newText"]
        }),
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(out) => return out,
        }
    };
}

fn resolve(ctx: &ToolContext, raw: &str) -> Result<std::path::PathBuf, ToolOutput> {
    ctx.workspace
        .resolve(raw)
        .map_err(|e| ToolOutput::error(e.to_string()))
}

/// Only regular files are opened: a FIFO or a device made by `bash` would block the read.
pub(super) fn regular_file(path: &std::path::Path, raw: &str) -> Result<(), ToolOutput> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(ToolOutput::error(format!("{raw} is a directory (use ls)"))),
        Ok(_) => Err(ToolOutput::error(format!("{raw} is not a regular file"))),
        Err(e) => Err(ToolOutput::error(format!("{raw}: {e}"))),
    }
}

pub fn read(ctx: &ToolContext, args: &Value) -> ToolOutput {
    let raw = tri!(str_arg(args, "path"));
    let path = tri!(resolve(ctx, raw));
    tri!(regular_file(&path, raw));
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return ToolOutput::error(format!("{raw}: {e}")),
    };
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_READ_BYTES).read_to_end(&mut bytes) {
        return ToolOutput::error(format!("{raw}: {e}"));
    }
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return ToolOutput::ok(format!(
            "{raw} is a binary file ({} bytes); it is not shown.",
            bytes.len()
        ));
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let offset = opt_u64(args, "offset").unwrap_or(1).max(1) as usize;
    if offset > lines.len().max(1) {
        return ToolOutput::error(format!(
            "offset {offset} is past the end of {raw} ({} lines)",
            lines.len()
        ));
    }
    let asked = opt_u64(args, "limit").map(|l| l as usize);
    let limit = asked.unwrap_or(ctx.limits.max_output_lines);
    let window: String = lines.iter().skip(offset - 1).take(limit).copied().collect();
    let (mut out, mut details) = truncate_head(&window, &ctx.limits);
    let shown = out.lines().count();
    let last = offset - 1 + shown;
    if last < lines.len() {
        if details.is_none() && asked.is_none() {
            // Cut by the default window: the desktop shows it as truncated.
            details = Some(crate::domain::message::ToolDetails {
                truncation: Some(crate::domain::message::Truncation {
                    truncated: true,
                    total_bytes: bytes.len() as u64,
                    total_lines: lines.len() as u64,
                    output_bytes: out.len() as u64,
                    output_lines: shown as u64,
                }),
                exit_code: None,
            });
        }
        out.push_str(&format!(
            "\n[Showing lines {offset}-{last} of {}. Use offset={} to continue.]",
            lines.len(),
            last + 1
        ));
    }
    ToolOutput {
        text: out,
        is_error: false,
        details,
    }
}

pub fn ls(ctx: &ToolContext, args: &Value) -> ToolOutput {
    let raw = opt_str(args, "path").unwrap_or(".");
    let path = tri!(resolve(ctx, raw));
    let entries = match std::fs::read_dir(&path) {
        Ok(e) => e,
        Err(e) => return ToolOutput::error(format!("{raw}: {e}")),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match e.file_type() {
                Ok(t) if t.is_dir() => format!("{name}/"),
                Ok(t) if t.is_symlink() => format!("{name}@"),
                _ => name,
            }
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return ToolOutput::ok("(empty directory)");
    }
    let total = names.len();
    names.truncate(MAX_LS_ENTRIES);
    let mut text = names.join("\n");
    if total > MAX_LS_ENTRIES {
        text.push_str(&format!(
            "\n[{} more entries not shown]",
            total - MAX_LS_ENTRIES
        ));
    }
    ToolOutput::ok(text)
}

pub fn write(ctx: &ToolContext, args: &Value) -> ToolOutput {
    let raw = tri!(str_arg(args, "path"));
    let content = tri!(str_arg(args, "content"));
    if content.len() > MAX_WRITE_BYTES {
        return ToolOutput::error(format!(
            "The content is larger than {MAX_WRITE_BYTES} bytes."
        ));
    }
    let path = tri!(resolve(ctx, raw));
    if path == ctx.workspace.root() {
        return ToolOutput::error("Give a file path, not the workspace itself.");
    }
    if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
        return ToolOutput::error(format!("{raw} exists and is not a regular file"));
    }
    if let Some(parent) = path.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return ToolOutput::error(format!("{raw}: {e}"));
    }
    match std::fs::write(&path, content) {
        Ok(()) => ToolOutput::ok(format!(
            "Wrote {} bytes to {}",
            content.len(),
            ctx.workspace.display(&path)
        )),
        Err(e) => ToolOutput::error(format!("{raw}: {e}")),
    }
}

pub fn edit(ctx: &ToolContext, args: &Value) -> ToolOutput {
    let raw = tri!(str_arg(args, "path"));
    let old = tri!(str_arg(args, "oldText"));
    let new = tri!(str_arg(args, "newText"));
    if old.is_empty() {
        return ToolOutput::error("oldText must not be empty (use write to create a file).");
    }
    let path = tri!(resolve(ctx, raw));
    tri!(regular_file(&path, raw));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return ToolOutput::error(format!("{raw}: {e}")),
    };
    let count = text.matches(old).count();
    match count {
        0 => {
            return ToolOutput::error(format!(
                "oldText was not found in {raw}; nothing was changed."
            ));
        }
        1 => {}
        n => {
            return ToolOutput::error(format!(
                "oldText occurs {n} times in {raw}; include more surrounding text so it \
                 matches exactly once. Nothing was changed."
            ));
        }
    }
    let at = text.find(old).unwrap_or(0);
    let first_line = text[..at].matches('\n').count() + 1;
    let updated = text.replacen(old, new, 1);
    if updated.len() > MAX_WRITE_BYTES {
        return ToolOutput::error(format!("The file would exceed {MAX_WRITE_BYTES} bytes."));
    }
    match std::fs::write(&path, &updated) {
        Ok(()) => ToolOutput::ok(format!(
            "Edited {} at line {first_line}: replaced {} line(s) with {} line(s).",
            ctx.workspace.display(&path),
            old.lines().count().max(1),
            new.lines().count().max(1)
        )),
        Err(e) => ToolOutput::error(format!("{raw}: {e}")),
    }
}
