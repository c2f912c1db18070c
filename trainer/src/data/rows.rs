//! Dataset rows from `.jsonl`, `.json` (an array of objects) and `.parquet` files: the input text
//! and the target text of each, taken from the configured fields.

use std::fmt;
use std::path::{Path, PathBuf};

use ferrotune_config::DataFormat;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;

/// Where a row sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a JSONL file.
    Line(usize),
    /// 0-based index of a row in a JSON array or a Parquet file.
    Index(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Index(i) => write!(f, "row index {i}"),
        }
    }
}

/// One example: the text to summarise and its reference summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The input field's text (it fills `{dialogue}` in the prompt).
    pub input: String,
    /// The target field's text (never empty).
    pub target: String,
    /// Where the row came from, for messages.
    pub location: Location,
}

/// Why a dataset file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The format is `auto` and the extension is not one we read.
    #[error("{}: cannot tell the format from the extension: use .jsonl, .json or .parquet, or set data.format", path.display())]
    UnknownExtension { path: PathBuf },
    /// Bytes that are not UTF-8.
    #[error("{}, line {line}: invalid UTF-8", path.display())]
    InvalidUtf8 { path: PathBuf, line: usize },
    /// Text that is not JSON.
    #[error("{}, {location}: invalid JSON: {message}", path.display())]
    InvalidJson {
        path: PathBuf,
        location: Location,
        message: String,
    },
    /// A `.json` file whose top level is not an array.
    #[error("{}: expected a JSON array of objects, found {found}", path.display())]
    NotAnArray { path: PathBuf, found: &'static str },
    /// A row that is not a JSON object.
    #[error("{}, {location}: expected an object, found {found}", path.display())]
    NotAnObject {
        path: PathBuf,
        location: Location,
        found: &'static str,
    },
    /// A row without the configured field.
    #[error("{}, {location}: missing field `{field}` ({setting}); the row has: {}", path.display(), available.join(", "))]
    MissingField {
        path: PathBuf,
        location: Location,
        field: String,
        /// The config key that names the field.
        setting: &'static str,
        available: Vec<String>,
    },
    /// A Parquet file without the configured column.
    #[error("{}: missing column `{field}` ({setting}); the file has: {}", path.display(), available.join(", "))]
    MissingColumn {
        path: PathBuf,
        field: String,
        /// The config key that names the column.
        setting: &'static str,
        available: Vec<String>,
    },
    /// A field holding something other than text.
    #[error("{}, {location}: field `{field}` must be a string, found {found}", path.display())]
    NotAString {
        path: PathBuf,
        location: Location,
        field: String,
        found: String,
    },
    /// A row whose target is empty or only whitespace.
    #[error("{}, {location}: the target field `{field}` is empty", path.display())]
    EmptyTarget {
        path: PathBuf,
        location: Location,
        field: String,
    },
    /// The file holds no rows.
    #[error("{}: the file has no rows", path.display())]
    Empty { path: PathBuf },
    /// The Parquet reader failed.
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
}

/// A concrete file format.
enum FileFormat {
    Jsonl,
    Json,
    Parquet,
}

/// The format of `path`: `format` unless it is `auto`, else from the extension.
fn resolve_format(path: &Path, format: DataFormat) -> Result<FileFormat, RowsError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match (format, ext.as_deref()) {
        (DataFormat::Jsonl, _) | (DataFormat::Auto, Some("jsonl")) => Ok(FileFormat::Jsonl),
        (DataFormat::Json, _) | (DataFormat::Auto, Some("json")) => Ok(FileFormat::Json),
        (DataFormat::Parquet, _) | (DataFormat::Auto, Some("parquet")) => Ok(FileFormat::Parquet),
        (DataFormat::Auto, _) => Err(RowsError::UnknownExtension {
            path: path.to_path_buf(),
        }),
    }
}

/// Reads every row of `path`, taking the text of `input_field` and `target_field`.
pub fn read_rows(
    path: &Path,
    format: DataFormat,
    input_field: &str,
    target_field: &str,
) -> Result<Vec<Row>, RowsError> {
    let fields = Fields {
        path,
        input: input_field,
        target: target_field,
    };
    let rows = match resolve_format(path, format)? {
        FileFormat::Jsonl => read_jsonl(&fields)?,
        FileFormat::Json => read_json(&fields)?,
        FileFormat::Parquet => read_parquet(&fields)?,
    };
    if rows.is_empty() {
        return Err(RowsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(rows)
}

/// The file and field names, shared by the readers.
struct Fields<'a> {
    path: &'a Path,
    input: &'a str,
    target: &'a str,
}

impl Fields<'_> {
    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    /// The config key that names `field`.
    fn setting(&self, field: &str) -> &'static str {
        if field == self.input {
            "data.input_field"
        } else {
            "data.target_field"
        }
    }

    /// A row from a JSON object.
    fn row_from_object(&self, value: &Value, location: Location) -> Result<Row, RowsError> {
        let Value::Object(object) = value else {
            return Err(RowsError::NotAnObject {
                path: self.path(),
                location,
                found: json_kind(value),
            });
        };
        let text = |field: &str| match object.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(RowsError::NotAString {
                path: self.path(),
                location,
                field: field.to_owned(),
                found: json_kind(other).to_owned(),
            }),
            None => Err(RowsError::MissingField {
                path: self.path(),
                location,
                field: field.to_owned(),
                setting: self.setting(field),
                available: object.keys().cloned().collect(),
            }),
        };
        self.row(text(self.input)?, text(self.target)?, location)
    }

    fn row(&self, input: String, target: String, location: Location) -> Result<Row, RowsError> {
        if target.trim().is_empty() {
            return Err(RowsError::EmptyTarget {
                path: self.path(),
                location,
                field: self.target.to_owned(),
            });
        }
        Ok(Row {
            input,
            target,
            location,
        })
    }

    fn read(&self) -> Result<Vec<u8>, RowsError> {
        std::fs::read(self.path).map_err(|source| RowsError::Io {
            path: self.path(),
            source,
        })
    }

    /// The file as text without a leading byte-order mark, or the line of its first invalid byte.
    fn read_text(&self) -> Result<String, RowsError> {
        let text = String::from_utf8(self.read()?).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            RowsError::InvalidUtf8 {
                path: self.path(),
                line,
            }
        })?;
        Ok(match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_owned(),
            None => text,
        })
    }
}

fn read_jsonl(fields: &Fields) -> Result<Vec<Row>, RowsError> {
    let text = fields.read_text()?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let location = Location::Line(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| RowsError::InvalidJson {
            path: fields.path(),
            location,
            message: format!("{} at column {}", strip_position(&e), e.column()),
        })?;
        rows.push(fields.row_from_object(&value, location)?);
    }
    Ok(rows)
}

fn read_json(fields: &Fields) -> Result<Vec<Row>, RowsError> {
    let text = fields.read_text()?;
    let value: Value = serde_json::from_str(&text).map_err(|e| RowsError::InvalidJson {
        path: fields.path(),
        location: Location::Line(e.line()),
        message: format!("{} at column {}", strip_position(&e), e.column()),
    })?;
    let Value::Array(items) = value else {
        return Err(RowsError::NotAnArray {
            path: fields.path(),
            found: json_kind(&value),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| fields.row_from_object(item, Location::Index(i)))
        .collect()
}

fn read_parquet(fields: &Fields) -> Result<Vec<Row>, RowsError> {
    let parquet_error = |message: String| RowsError::Parquet {
        path: fields.path(),
        message,
    };
    let file = std::fs::File::open(fields.path).map_err(|source| RowsError::Io {
        path: fields.path(),
        source,
    })?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| parquet_error(format!("not a readable Parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let column = |field: &str| {
        names
            .iter()
            .position(|n| n == field)
            .ok_or_else(|| RowsError::MissingColumn {
                path: fields.path(),
                field: field.to_owned(),
                setting: fields.setting(field),
                available: names.clone(),
            })
    };
    let (input_col, target_col) = (column(fields.input)?, column(fields.target)?);
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| parquet_error(e.to_string()))?;
    let mut rows = Vec::new();
    for (i, record) in iter.enumerate() {
        let location = Location::Index(i);
        let record = record.map_err(|e| parquet_error(format!("{location}: {e}")))?;
        let columns = record.into_columns();
        let text = |col: usize, field: &str| match &columns[col].1 {
            Field::Str(s) => Ok(s.clone()),
            Field::Bytes(bytes) => {
                String::from_utf8(bytes.data().to_vec()).map_err(|_| RowsError::NotAString {
                    path: fields.path(),
                    location,
                    field: field.to_owned(),
                    found: "bytes that are not UTF-8".to_owned(),
                })
            }
            other => Err(RowsError::NotAString {
                path: fields.path(),
                location,
                field: field.to_owned(),
                found: parquet_kind(other),
            }),
        };
        rows.push(fields.row(
            text(input_col, fields.input)?,
            text(target_col, fields.target)?,
            location,
        )?);
    }
    Ok(rows)
}

/// serde_json's message without its trailing "at line L column C".
fn strip_position(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.rfind(" at line ") {
        Some(pos) => message[..pos].to_owned(),
        None => message,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parquet_kind(field: &Field) -> String {
    match field {
        Field::Null => "null".to_owned(),
        Field::Group(_) => "a struct".to_owned(),
        Field::ListInternal(_) => "a list".to_owned(),
        Field::MapInternal(_) => "a map".to_owned(),
        other => format!("the value {other}"),
    }
}
