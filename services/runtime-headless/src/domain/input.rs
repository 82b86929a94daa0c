//! What a user sends with `prompt`, `steer` and `follow_up`: text, `images[]` and `files[]`
//! as the desktop encodes them (base64), validated once at the edge and stored with the turn.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::message::{UserMessage, UserPart};

/// Images the providers accept as image content.
const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// Files up to this size whose bytes are UTF-8 are given to the model inline.
pub const MAX_INLINE_FILE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInput {
    pub text: String,
    #[serde(default)]
    pub images: Vec<ImageInput>,
    #[serde(default)]
    pub files: Vec<FileInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInput {
    pub data: String,
    pub mime_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInput {
    pub name: String,
    pub mime_type: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("images[{0}]: {1}")]
    Image(usize, String),
    #[error("files[{0}]: {1}")]
    File(usize, String),
    #[error("the message is empty")]
    Empty,
}

/// The desktop's `images[]` entries: `{type:"image", data, mimeType}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawImage {
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
}

/// The desktop's `files[]` entries: `{type:"file", name, mimeType, data, size}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
}

impl UserInput {
    pub fn parse(
        message: Option<&str>,
        images: &[RawImage],
        files: &[RawFile],
    ) -> Result<Self, InputError> {
        let text = message.unwrap_or_default().to_owned();
        let mut out = Self {
            text,
            ..Self::default()
        };
        for (i, img) in images.iter().enumerate() {
            let mime = img.mime_type.as_deref().unwrap_or("").trim().to_lowercase();
            if !IMAGE_TYPES.contains(&mime.as_str()) {
                return Err(InputError::Image(
                    i,
                    format!("mimeType must be one of {}", IMAGE_TYPES.join(", ")),
                ));
            }
            let data = img.data.as_deref().unwrap_or("").trim();
            if data.is_empty() || STANDARD.decode(data).is_err() {
                return Err(InputError::Image(i, "data must be base64".into()));
            }
            out.images.push(ImageInput {
                data: data.to_owned(),
                mime_type: mime,
            });
        }
        for (i, f) in files.iter().enumerate() {
            let name = sanitize_file_name(f.name.as_deref().unwrap_or(""));
            if name.is_empty() {
                return Err(InputError::File(i, "name is required".into()));
            }
            let data = f.data.as_deref().unwrap_or("").trim();
            if STANDARD.decode(data).is_err() {
                return Err(InputError::File(i, "data must be base64".into()));
            }
            out.files.push(FileInput {
                name,
                mime_type: f
                    .mime_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                data: data.to_owned(),
            });
        }
        if out.text.trim().is_empty() && out.images.is_empty() && out.files.is_empty() {
            return Err(InputError::Empty);
        }
        Ok(out)
    }

    /// The user message the model sees. Text files are inlined; `saved` names where other
    /// files were written in the workspace (`None`: there is no workspace to hold them).
    pub fn to_message(
        &self,
        id: String,
        timestamp: i64,
        saved: &dyn Fn(&FileInput) -> Option<String>,
    ) -> UserMessage {
        let mut text = self.text.clone();
        for f in &self.files {
            let bytes = STANDARD.decode(&f.data).unwrap_or_default();
            let note = match (std::str::from_utf8(&bytes), saved(f)) {
                (Ok(body), path) if bytes.len() <= MAX_INLINE_FILE_BYTES => {
                    let at = path.map(|p| format!(" path=\"{p}\"")).unwrap_or_default();
                    format!("<file name=\"{}\"{at}>\n{body}\n</file>", f.name)
                }
                (_, Some(path)) => format!(
                    "[Attached file {} ({}, {} bytes) saved as {path}]",
                    f.name,
                    f.mime_type,
                    bytes.len()
                ),
                (_, None) => format!(
                    "[Attached file {} ({}, {} bytes): not readable here]",
                    f.name,
                    f.mime_type,
                    bytes.len()
                ),
            };
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&note);
        }
        let mut content = vec![UserPart::Text { text }];
        content.extend(self.images.iter().map(|i| UserPart::Image {
            data: i.data.clone(),
            mime_type: i.mime_type.clone(),
        }));
        UserMessage {
            id,
            content,
            timestamp,
        }
    }
}

/// A file name safe to write into a workspace: no directories, no leading dots, printable.
pub fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned
        .trim()
        .trim_start_matches('.')
        .chars()
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn validates_images_and_files() {
        let ok = UserInput::parse(
            Some("look"),
            &[RawImage {
                data: Some(b64(b"\x89PNG")),
                mime_type: Some("image/PNG".into()),
            }],
            &[RawFile {
                name: Some("../../etc/notes.txt".into()),
                mime_type: Some("text/plain".into()),
                data: Some(b64(b"hello")),
            }],
        )
        .unwrap();
        assert_eq!(ok.images[0].mime_type, "image/png");
        assert_eq!(ok.files[0].name, "notes.txt");
        assert!(
            UserInput::parse(
                None,
                &[RawImage {
                    data: Some("!!".into()),
                    mime_type: Some("image/png".into())
                }],
                &[]
            )
            .is_err()
        );
        assert!(
            UserInput::parse(
                None,
                &[RawImage {
                    data: Some(b64(b"x")),
                    mime_type: Some("application/pdf".into())
                }],
                &[]
            )
            .is_err()
        );
        assert_eq!(
            UserInput::parse(Some("  "), &[], &[]),
            Err(InputError::Empty)
        );
    }

    #[test]
    fn text_files_are_inlined_and_others_referenced() {
        let input = UserInput {
            text: "see".into(),
            images: vec![],
            files: vec![
                FileInput {
                    name: "a.txt".into(),
                    mime_type: "text/plain".into(),
                    data: b64(b"alpha"),
                },
                FileInput {
                    name: "b.bin".into(),
                    mime_type: "application/octet-stream".into(),
                    data: b64(&[0xff, 0xfe, 0x00]),
                },
            ],
        };
        let m = input.to_message("u".into(), 1, &|f| Some(format!("attachments/{}", f.name)));
        let UserPart::Text { text } = &m.content[0] else {
            panic!()
        };
        assert!(text.contains("<file name=\"a.txt\" path=\"attachments/a.txt\">\nalpha\n</file>"));
        assert!(
            text.contains("b.bin (application/octet-stream, 3 bytes) saved as attachments/b.bin")
        );
        assert_eq!(sanitize_file_name("..hidden"), "hidden");
    }
}
