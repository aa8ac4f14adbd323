//! File formats, codecs and the encoders that turn Arrow record batches into file bytes.
//!
//! A format is a small value type ([`Format`]) that knows its file extension and content
//! type. An [`Encoder`] takes batches and hands back finished bytes as it goes, so a file of
//! any size streams to its sink with bounded memory; [`FileWriter`] wraps an encoder and
//! counts rows and bytes and hashes the object (sha256) exactly as it will be stored.
//!
//! Encoders never touch the network or the file system: they produce bytes, the sink stores
//! them.

mod avro;
pub(crate) use avro::read_avro;
mod csv;
mod jsonl;
mod parquet;
pub mod pgp;
mod pool;
mod writer;

use std::fmt;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use writer::{FileStats, FileWriter};

/// The container of a file: what a reader must understand to open it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    /// Apache Parquet; compression is Parquet's own, per column chunk.
    Parquet,
    /// Comma (or semicolon, or tab) separated values with a header line.
    Csv,
    /// JSON lines: one JSON object per row, newline terminated.
    Jsonl,
    /// Apache Avro object container files; compression is Avro's own, per block (`gzip` is
    /// written as Avro's `deflate`).
    Avro,
}

/// Compression codec. For Parquet it is the column-chunk codec inside the file; for CSV and
/// JSON lines it wraps the whole file (gzip only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// No compression.
    None,
    /// gzip (deflate). The default: every tool reads it.
    #[default]
    Gzip,
    /// Zstandard: smaller and much faster than gzip; Parquet only.
    Zstd,
    /// Snappy: fastest, largest; Parquet only.
    Snappy,
}

/// The field separator of a CSV file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delimiter {
    /// `,` (the default).
    #[default]
    Comma,
    /// `;`, what spreadsheet software in many European locales expects.
    Semicolon,
    /// A tab character.
    Tab,
}

impl Delimiter {
    /// The separator byte.
    pub fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
            Delimiter::Tab => b'\t',
        }
    }
}

impl Serialize for Delimiter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Delimiter::Comma => ",",
            Delimiter::Semicolon => ";",
            Delimiter::Tab => "\t",
        })
    }
}

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "," | "comma" => Ok(Delimiter::Comma),
            ";" | "semicolon" => Ok(Delimiter::Semicolon),
            "\t" | "tab" => Ok(Delimiter::Tab),
            other => {
                Err(serde::de::Error::custom(format!("invalid delimiter {other:?}: expected \",\", \";\" or \"tab\"")))
            }
        }
    }
}

/// How files are written: container, codec and (for CSV) the text's shape.
///
/// The same shape appears in the config (`format = { type = "csv", codec = "gzip",
/// delimiter = ";", null = "\\N" }`) and in `receipt.json`, so a loader knows how to read
/// every file. The CSV options are absent from both when left at their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    /// `parquet`, `csv` or `jsonl`.
    #[serde(rename = "type")]
    pub kind: FormatKind,
    /// `gzip` (default), `zstd`, `snappy` or `none`; CSV and JSON lines allow `gzip` or `none`.
    #[serde(default)]
    pub codec: Codec,
    /// CSV only: `,` (default), `;` or `tab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<Delimiter>,
    /// CSV only: whether each file opens with a header line of column names (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CSV only: the character that quotes a field holding the delimiter, a quote or a line
    /// break (default `"`). One ASCII punctuation character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<char>,
    /// CSV only: the character that escapes a quote inside a quoted field (default: none, the
    /// quote is doubled, RFC 4180). One ASCII punctuation character, e.g. `\\`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<char>,
    /// CSV only: the text written for NULL (default: an empty field, which reads back as NULL
    /// for an empty string too). Set it (e.g. `\\N`, PostgreSQL's) and an empty string stays an
    /// empty string. At most 16 characters, none of them the delimiter, quote, escape or a line break;
    /// a value equal to it reads back as NULL, so pick text the data does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null: Option<String>,
    /// CSV only: `lf` (default) or `crlf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_ending: Option<LineEnding>,
}

/// How CSV lines end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEnding {
    /// `\n` (the default).
    #[default]
    Lf,
    /// `\r\n`, what Windows tools and some FTP-era loaders expect.
    Crlf,
}

/// The CSV options of a [`Format`] with their defaults applied: what the encoder writes and
/// the loader reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvStyle {
    /// The field separator.
    pub delimiter: u8,
    /// A header line first.
    pub header: bool,
    /// The quote character.
    pub quote: u8,
    /// The escape character; `None`: quotes are doubled.
    pub escape: Option<u8>,
    /// The text of NULL (empty by default).
    pub null: String,
    /// `\r\n` line endings.
    pub crlf: bool,
}

impl Default for Format {
    /// Parquet with gzip column chunks: Dreamdata's `.parquet.gz`.
    fn default() -> Self {
        Format {
            kind: FormatKind::Parquet,
            codec: Codec::Gzip,
            delimiter: None,
            header: None,
            quote: None,
            escape: None,
            null: None,
            line_ending: None,
        }
    }
}

impl Format {
    /// A format of `kind` and `codec`, every CSV option at its default.
    pub fn new(kind: FormatKind, codec: Codec) -> Self {
        Format { kind, codec, ..Format::default() }
    }

    /// Checks the combination of kind, codec and CSV options; the message says what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if let (FormatKind::Csv | FormatKind::Jsonl, Codec::Zstd | Codec::Snappy) = (self.kind, self.codec) {
            return Err(format!(
                "codec {:?} is not available for {:?}: use \"gzip\" or \"none\"",
                self.codec, self.kind
            ));
        }
        if self.kind != FormatKind::Csv {
            let set: Vec<&str> = [
                ("delimiter", self.delimiter.is_some()),
                ("header", self.header.is_some()),
                ("quote", self.quote.is_some()),
                ("escape", self.escape.is_some()),
                ("null", self.null.is_some()),
                ("line_ending", self.line_ending.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if !set.is_empty() {
                return Err(format!("{} applies to csv only, not {:?}", set.join(", "), self.kind));
            }
            return Ok(());
        }
        let delimiter = char::from(self.delimiter().byte());
        for (name, c) in [("quote", self.quote), ("escape", self.escape)] {
            let Some(c) = c else { continue };
            if !c.is_ascii_punctuation() {
                return Err(format!("{name} {c:?} must be one ASCII punctuation character, e.g. \"'\" or \"\\\\\""));
            }
            if c == delimiter {
                return Err(format!("{name} {c:?} is the delimiter: pick another character"));
            }
        }
        if self.quote.is_some() && self.quote == self.escape {
            return Err("escape must differ from quote (leave escape out to double quotes instead)".into());
        }
        if let Some(null) = &self.null {
            let quote = self.quote.unwrap_or('"');
            if null.chars().count() > 16 {
                return Err(format!("null {null:?} is longer than 16 characters"));
            }
            let escape = self.escape;
            if let Some(c) =
                null.chars().find(|&c| c == delimiter || c == quote || Some(c) == escape || c == '\n' || c == '\r')
            {
                return Err(format!(
                    "null {null:?} holds {c:?} (the delimiter, the quote, the escape or a line break): it would be \
                     quoted, and readers could not tell it from data"
                ));
            }
        }
        Ok(())
    }

    /// The CSV options with their defaults applied.
    pub fn csv_style(&self) -> CsvStyle {
        // Validated: quote and escape are ASCII, so the conversion keeps them whole.
        let byte = |c: char| u8::try_from(c).unwrap_or(b'"');
        CsvStyle {
            delimiter: self.delimiter().byte(),
            header: self.header.unwrap_or(true),
            quote: byte(self.quote.unwrap_or('"')),
            escape: self.escape.map(byte),
            null: self.null.clone().unwrap_or_default(),
            crlf: self.line_ending == Some(LineEnding::Crlf),
        }
    }

    /// The file extension without its leading dot.
    ///
    /// Parquet with gzip keeps Dreamdata's (and BigQuery's) `parquet.gz`, although the file is
    /// a plain Parquet file with gzip column chunks; other codecs follow Spark's naming
    /// (`zstd.parquet`), so no tool mistakes a Parquet file for a compressed stream.
    pub fn extension(&self) -> &'static str {
        match (self.kind, self.codec) {
            (FormatKind::Parquet, Codec::Gzip) => "parquet.gz",
            (FormatKind::Parquet, Codec::Zstd) => "zstd.parquet",
            (FormatKind::Parquet, Codec::Snappy) => "snappy.parquet",
            (FormatKind::Parquet, Codec::None) => "parquet",
            (FormatKind::Csv, Codec::None) => "csv",
            (FormatKind::Csv, _) => "csv.gz",
            (FormatKind::Jsonl, Codec::None) => "jsonl",
            (FormatKind::Jsonl, _) => "jsonl.gz",
            (FormatKind::Avro, _) => "avro",
        }
    }

    /// The `Content-Type` stored with each object.
    pub fn content_type(&self) -> &'static str {
        match (self.kind, self.codec) {
            (FormatKind::Parquet, _) => "application/vnd.apache.parquet",
            (FormatKind::Avro, _) => "application/avro",
            (_, Codec::Gzip) => "application/gzip",
            (FormatKind::Csv, _) => "text/csv; charset=utf-8",
            (FormatKind::Jsonl, _) => "application/x-ndjson",
        }
    }

    /// The CSV separator, defaulting to a comma.
    pub fn delimiter(&self) -> Delimiter {
        self.delimiter.unwrap_or_default()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.extension())
    }
}

/// Tuning knobs of the encoders and of the export pipeline around them. Sizes are in bytes
/// so memory stays predictable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Parquet: a row group is closed once its encoded, in-memory size reaches this. The
    /// encoder holds about one row group (plus the blocks its threads are working on).
    pub row_group_bytes: usize,
    /// Parquet: and at most this many rows per row group.
    pub row_group_rows: usize,
    /// gzip level 0-9 (Parquet gzip codec and gzip-wrapped CSV/JSON lines).
    pub gzip_level: u32,
    /// zstd level 1-22.
    pub zstd_level: i32,
    /// CSV and JSON lines with gzip: the text is compressed in blocks of this many bytes,
    /// each an independent gzip member (a multi-member gzip file, which every gzip reader
    /// reads as one stream), so blocks compress on all cores at once. The output depends on
    /// this size only, never on the number of threads.
    pub gzip_block_bytes: usize,
    /// Encode on the shared worker pool (one thread per core): Parquet columns of a row
    /// group, and gzip blocks, in parallel. `false`: on the calling thread. The output is
    /// the same either way.
    pub parallel: bool,
    /// Export pipeline: record batches read ahead of the encoder, in bytes of Arrow memory
    /// (one batch always passes, however large).
    pub read_ahead_bytes: usize,
    /// Export pipeline: encoded bytes waiting for the uploader (one piece always passes,
    /// however large: a Parquet row group is handed over whole).
    pub upload_queue_bytes: usize,
}

/// The default gzip block of CSV and JSON lines: 2 MiB.
pub const DEFAULT_GZIP_BLOCK_BYTES: usize = 2 * 1024 * 1024;

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            row_group_bytes: 32 * 1024 * 1024,
            row_group_rows: 1024 * 1024,
            gzip_level: 6,
            zstd_level: 3,
            gzip_block_bytes: DEFAULT_GZIP_BLOCK_BYTES,
            parallel: true,
            read_ahead_bytes: 32 * 1024 * 1024,
            upload_queue_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The Parquet writer failed.
    #[error("parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    /// Arrow (CSV or JSON writer) failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Compressing failed.
    #[error("compression: {0}")]
    Io(#[from] std::io::Error),
    /// A column type this format cannot represent.
    #[error("column {column:?} has type {data_type}, which {format} cannot store")]
    Unsupported { column: String, data_type: String, format: &'static str },
    /// The format/codec combination is invalid.
    #[error("{0}")]
    Invalid(String),
    /// An encoder thread failed (a job panicked or was lost).
    #[error("encoder thread: {0}")]
    Worker(String),
    /// OpenPGP encryption failed (or the key cannot be used).
    #[error("openpgp: {0}")]
    Pgp(#[from] pgp::PgpError),
}

/// Turns record batches into the bytes of one file.
///
/// Bytes come out as they are finished ([`Encoder::take_ready`]), so a caller can upload a
/// large file part by part while it is still being encoded. They come as pieces, in order, so
/// an encoder can hand out buffers it already holds (Parquet's compressed pages) uncopied.
pub trait Encoder: Send {
    /// Encodes one batch. Every batch must have the schema the encoder was made with.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError>;
    /// Drains the finished bytes produced so far, in order (none, or pieces none of them empty).
    fn take_ready(&mut self) -> Vec<Bytes>;
    /// Bytes held inside the encoder that are not yet finished output (an estimate of what
    /// they will add to the file): used to roll files over and to watch memory.
    fn in_progress_size(&self) -> usize;
    /// Finishes the file and returns its remaining bytes (footer included), in order.
    fn finish(self: Box<Self>) -> Result<Vec<Bytes>, FormatError>;
}

/// `bytes` as the pieces [`Encoder::take_ready`] hands out: none when empty.
pub(crate) fn pieces(bytes: Vec<u8>) -> Vec<Bytes> {
    if bytes.is_empty() { Vec::new() } else { vec![Bytes::from(bytes)] }
}

/// The size of `pieces` together.
pub(crate) fn pieces_len(pieces: &[Bytes]) -> usize {
    pieces.iter().map(Bytes::len).sum()
}

/// Makes the encoder for `format`.
pub fn encoder(format: &Format, schema: SchemaRef, options: &EncoderOptions) -> Result<Box<dyn Encoder>, FormatError> {
    format.validate().map_err(FormatError::Invalid)?;
    match format.kind {
        FormatKind::Parquet => Ok(Box::new(parquet::ParquetEncoder::new(schema, format.codec, options)?)),
        FormatKind::Csv => Ok(Box::new(csv::CsvEncoder::new(schema, format.csv_style(), format.codec, options)?)),
        FormatKind::Jsonl => Ok(Box::new(jsonl::JsonlEncoder::new(schema, format.codec, options)?)),
        FormatKind::Avro => {
            let codec = match format.codec {
                Codec::None => avro::AvroCodec::Null,
                Codec::Gzip => avro::AvroCodec::Deflate(options.gzip_level),
                Codec::Snappy => avro::AvroCodec::Snappy,
                Codec::Zstd => avro::AvroCodec::Zstd(options.zstd_level),
            };
            Ok(Box::new(avro::AvroEncoder::new(schema, codec, avro::DEFAULT_BLOCK_BYTES)?))
        }
    }
}
