//! The checks made while a file is submitted, before any job exists: size, UTF-8, a header
//! naming the required columns, at least one row. A file that fails one of them is refused
//! whole with one [`FileError`], and nothing is changed. The scan also counts the rows, so
//! that a job's progress has a total from the start.

use super::csv_stream::{CsvStream, Next, StreamError};
use super::header::Header;
use super::FileError;

/// What a successful scan learnt about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Data records: not the header, not blank lines.
    pub rows: u64,
    pub bytes: u64,
    /// Header cells naming no column (reported once, as a warning, by the job).
    pub unknown_columns: Vec<String>,
}

/// Fed the file piece by piece; holds one piece and one record at a time.
pub struct FileScanner {
    max_bytes: u64,
    bytes: u64,
    /// Newlines in the bytes checked so far, to say where a bad byte is.
    newlines: u64,
    /// The start of a character cut by the end of the last piece.
    utf8_carry: Vec<u8>,
    stream: CsvStream,
    header: Option<Header>,
    rows: u64,
}

impl FileScanner {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            bytes: 0,
            newlines: 0,
            utf8_carry: Vec::new(),
            stream: CsvStream::new(),
            header: None,
            rows: 0,
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Checks the next piece of the file.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), FileError> {
        self.bytes += piece.len() as u64;
        if self.bytes > self.max_bytes {
            return Err(too_large(self.max_bytes));
        }
        self.check_utf8(piece)?;
        self.stream.push(piece);
        self.drain()
    }

    /// Ends the scan: the summary, or the file's error.
    pub fn finish(mut self) -> Result<FileSummary, FileError> {
        if !self.utf8_carry.is_empty() {
            return Err(not_utf8(self.newlines + 1));
        }
        self.stream.finish();
        self.drain()?;
        let Some(header) = self.header else {
            return Err(FileError::new("empty_file", "The file is empty."));
        };
        if self.rows == 0 {
            return Err(FileError::new(
                "empty_file",
                "The file has a header but no rows below it.",
            ));
        }
        Ok(FileSummary {
            rows: self.rows,
            bytes: self.bytes,
            unknown_columns: header.unknown,
        })
    }

    fn drain(&mut self) -> Result<(), FileError> {
        loop {
            match self.stream.next_record().map_err(stream_error)? {
                Next::Record(record) => {
                    if record.is_blank() {
                        continue;
                    }
                    if self.header.is_none() {
                        self.header = Some(Header::parse(&record.fields)?);
                    } else {
                        self.rows += 1;
                    }
                }
                Next::NeedInput | Next::End => return Ok(()),
            }
        }
    }

    fn check_utf8(&mut self, mut piece: &[u8]) -> Result<(), FileError> {
        // Complete a character the previous piece cut in two.
        while !self.utf8_carry.is_empty() {
            let Some((&b, rest)) = piece.split_first() else {
                return Ok(());
            };
            self.utf8_carry.push(b);
            piece = rest;
            match std::str::from_utf8(&self.utf8_carry) {
                Ok(_) => self.utf8_carry.clear(),
                Err(e) if e.error_len().is_some() => return Err(not_utf8(self.newlines + 1)),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => {}
            Err(e) => {
                let valid = &piece[..e.valid_up_to()];
                let line = self.newlines + 1 + count_newlines(valid);
                if e.error_len().is_some() {
                    return Err(not_utf8(line));
                }
                self.utf8_carry = piece[e.valid_up_to()..].to_vec();
            }
        }
        self.newlines += count_newlines(piece);
        Ok(())
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

pub fn too_large(max_bytes: u64) -> FileError {
    FileError::new(
        "too_large",
        format!(
            "The file is larger than the {} bytes ({}) this server accepts; split it in parts.",
            max_bytes,
            human_bytes(max_bytes)
        ),
    )
}

fn not_utf8(line: u64) -> FileError {
    FileError::new(
        "not_utf8",
        format!(
            "The file is not UTF-8 text (line {line}): save it from your spreadsheet as \
             “CSV UTF-8” and submit it again."
        ),
    )
}

fn stream_error(e: StreamError) -> FileError {
    match e {
        StreamError::RecordTooLong { line } => FileError::new(
            "record_too_long",
            format!(
                "The record starting on line {line} is longer than 1 MiB: a quote is probably \
                 left open."
            ),
        ),
        StreamError::TooManyFields { line } => FileError::new(
            "too_many_columns",
            format!(
                "The record starting on line {line} has more than {} cells.",
                super::csv_stream::MAX_FIELDS
            ),
        ),
    }
}

/// `512 MiB`, `1.5 GiB`, `900 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if (value - value.round()).abs() < 0.05 {
        format!("{} {}", value.round(), UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8], piece: usize, max: u64) -> Result<FileSummary, FileError> {
        let mut s = FileScanner::new(max);
        for p in bytes.chunks(piece.max(1)) {
            s.feed(p)?;
        }
        s.finish()
    }

    const MEEDS: &[u8] = b"userName,firstName,lastName,password,email\r\n\
        john.doe,John,Doe,Secret-Passw0rd!,john@example.org\r\n\
        jane.doe,Jane,Doe,,jane@example.org\r\n";

    #[test]
    fn a_good_file_is_counted() {
        let summary = scan(MEEDS, 7, 1 << 20).unwrap();
        assert_eq!(summary.rows, 2);
        assert_eq!(summary.bytes, MEEDS.len() as u64);
        assert!(summary.unknown_columns.is_empty());
    }

    #[test]
    fn blank_and_empty_records_are_not_rows() {
        let file = b"userName,firstName,lastName,email\n\njd,John,Doe,j@x.org\n,,,\n \n";
        assert_eq!(scan(file, 3, 1 << 20).unwrap().rows, 1);
    }

    #[test]
    fn each_file_level_problem_has_its_code() {
        let code = |bytes: &[u8], max: u64| scan(bytes, 5, max).unwrap_err().code;
        assert_eq!(code(b"", 100), "empty_file");
        assert_eq!(code(b"\xEF\xBB\xBF\r\n\r\n", 100), "empty_file");
        assert_eq!(
            code(b"userName,firstName,lastName,email\n", 100),
            "empty_file"
        );
        assert_eq!(code(b"jd,John,Doe,j@x.org\n", 100), "no_header");
        assert_eq!(code(b"userName,email\njd,j@x.org\n", 100), "missing_column");
        assert_eq!(code(MEEDS, 20), "too_large");
        assert_eq!(
            code(
                b"userName,firstName,lastName,email\nj\xE9r\xF4me,a,b,c\n",
                1000
            ),
            "not_utf8"
        );
    }

    #[test]
    fn a_character_cut_between_pieces_is_fine_and_a_bad_byte_is_located() {
        let file = "userName,firstName,lastName,email\njd,Élodie,Näf,e@x.org\n".as_bytes();
        for piece in 1..8 {
            assert_eq!(scan(file, piece, 1000).unwrap().rows, 1);
        }
        let err = scan(
            b"userName,firstName,lastName,email\n\nx,\xFF,b,c\n",
            4,
            1000,
        )
        .unwrap_err();
        assert!(err.message.contains("line 3"), "{}", err.message);
        assert_eq!(
            scan(b"userName,firstName,lastName,email\nx,\xC3", 4, 1000)
                .unwrap_err()
                .code,
            "not_utf8",
            "a character cut by the end of the file"
        );
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_bytes(536_870_912), "512 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
