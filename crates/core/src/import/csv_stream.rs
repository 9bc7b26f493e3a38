//! A push parser for CSV files that arrive in pieces (an HTTP body, chunks read back from the
//! store, a file read block by block): bytes go in as they come, records come out with the
//! physical line on which each starts.
//!
//! The parsing itself is `csv-core`, the state machine under the `csv` crate (RFC 4180
//! quoting, embedded delimiters, quotes and newlines, CRLF or LF), driven here by hand because
//! `csv::Reader` pulls from a blocking `io::Read`, while an import is fed from async sources
//! and must hold no more than one chunk and one record in memory. Around it this module adds
//! what an import needs: the UTF-8 byte-order mark stripped, `,` or `;` chosen from the header
//! line, blank lines skipped, cells trimmed, and bounds on a record's size so that a hostile
//! file cannot make one record take the memory of the whole file.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// The largest record accepted (all its cells together): far above any real row, far below
/// what a file without a closing quote could otherwise make one record grow to.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The most cells a record may have.
pub const MAX_FIELDS: usize = 512;

/// How much of the file is looked at to find the header line's delimiter when no newline
/// comes sooner.
const MAX_FIRST_LINE: usize = 64 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record: the physical line where it starts (the first line is 1) and its cells,
/// trimmed. Bytes that are not UTF-8 become U+FFFD here; files are checked for UTF-8 when
/// they are submitted (see [`super::FileScanner`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub line: u64,
    pub fields: Vec<String>,
}

impl RawRecord {
    /// A record whose every cell is empty (`,,,`), as spreadsheets write below the data.
    pub fn is_blank(&self) -> bool {
        self.fields.iter().all(String::is_empty)
    }
}

/// What [`CsvStream::next_record`] has to say.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Record(RawRecord),
    /// Everything given so far is parsed: [`CsvStream::push`] more, or [`CsvStream::finish`].
    NeedInput,
    /// The input is finished and every record was returned.
    End,
}

/// A record the parser refuses to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    RecordTooLong { line: u64 },
    TooManyFields { line: u64 },
}

pub struct CsvStream {
    /// Input not parsed yet, from `pos`.
    buf: Vec<u8>,
    pos: usize,
    finished: bool,
    /// Set once the byte-order mark is gone and the delimiter is known.
    core: Option<Reader>,
    delimiter: u8,
    /// The physical line of the next byte to parse.
    line: u64,
    /// Whether the parser is inside a record (its first byte was seen).
    in_record: bool,
    record_line: u64,
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    done: bool,
}

impl Default for CsvStream {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvStream {
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            finished: false,
            core: None,
            delimiter: b',',
            line: 1,
            in_record: false,
            record_line: 1,
            out: vec![0; 4096],
            out_len: 0,
            ends: vec![0; 32],
            ends_len: 0,
            done: false,
        }
    }

    /// Adds the next bytes of the file.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Says that no more bytes will come.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The delimiter in use: `;` when the header line holds more semicolons than commas
    /// (outside quotes), else `,`. Meaningful once the first record was returned.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The next record, or what the parser needs to go on.
    pub fn next_record(&mut self) -> Result<Next, StreamError> {
        if self.done {
            return Ok(Next::End);
        }
        if self.core.is_none() && !self.start() {
            return Ok(Next::NeedInput);
        }
        loop {
            if !self.in_record {
                // Line terminators between records are blank lines: skipped, but counted.
                while let Some(&b) = self.buf.get(self.pos) {
                    if b != b'\n' && b != b'\r' {
                        break;
                    }
                    if b == b'\n' {
                        self.line += 1;
                    }
                    self.pos += 1;
                }
                if self.pos == self.buf.len() && !self.finished {
                    return Ok(self.need_input());
                }
                self.in_record = true;
                self.record_line = self.line;
                self.out_len = 0;
                self.ends_len = 0;
            }
            let input = &self.buf[self.pos..];
            if input.is_empty() && !self.finished {
                return Ok(self.need_input());
            }
            let core = self.core.as_mut().expect("started");
            let (result, nin, nout, nend) = core.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            self.line += input[..nin].iter().filter(|&&b| b == b'\n').count() as u64;
            self.pos += nin;
            self.out_len += nout;
            self.ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => {
                    if !self.finished {
                        return Ok(self.need_input());
                    }
                    // Finished: the next call, with empty input, ends the record.
                }
                ReadRecordResult::OutputFull => {
                    if self.out.len() >= MAX_RECORD_BYTES {
                        self.done = true;
                        return Err(StreamError::RecordTooLong {
                            line: self.record_line,
                        });
                    }
                    let grown = (self.out.len() * 2).min(MAX_RECORD_BYTES);
                    self.out.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_FIELDS {
                        self.done = true;
                        return Err(StreamError::TooManyFields {
                            line: self.record_line,
                        });
                    }
                    let grown = (self.ends.len() * 2).min(MAX_FIELDS);
                    self.ends.resize(grown, 0);
                }
                ReadRecordResult::Record => {
                    self.in_record = false;
                    return Ok(Next::Record(self.take_record()));
                }
                ReadRecordResult::End => {
                    self.done = true;
                    return Ok(Next::End);
                }
            }
        }
    }

    fn need_input(&mut self) -> Next {
        self.buf.clear();
        self.pos = 0;
        Next::NeedInput
    }

    fn take_record(&mut self) -> RawRecord {
        let mut fields = Vec::with_capacity(self.ends_len);
        let mut start = 0;
        for &end in &self.ends[..self.ends_len] {
            let cell = String::from_utf8_lossy(&self.out[start..end]);
            fields.push(cell.trim().to_owned());
            start = end;
        }
        RawRecord {
            line: self.record_line,
            fields,
        }
    }

    /// Strips the byte-order mark and picks the delimiter once the first line is in (or the
    /// input is finished); `false` while more input is needed for that.
    fn start(&mut self) -> bool {
        let pending = &self.buf[self.pos..];
        let has_line = pending.contains(&b'\n');
        if !(has_line || self.finished || pending.len() >= MAX_FIRST_LINE) {
            return false;
        }
        if pending.starts_with(BOM) {
            self.pos += BOM.len();
        }
        let pending = &self.buf[self.pos..];
        let first_line = &pending[..pending
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(pending.len())
            .min(MAX_FIRST_LINE)];
        self.delimiter = detect_delimiter(first_line);
        self.core = Some(ReaderBuilder::new().delimiter(self.delimiter).build());
        true
    }
}

/// `;` when the line holds more semicolons than commas outside quotes, else `,`.
pub fn detect_delimiter(line: &[u8]) -> u8 {
    let (mut commas, mut semicolons, mut quoted) = (0usize, 0usize, false);
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas {
        b';'
    } else {
        b','
    }
}

/// Parses a whole file at once, for tests and small inputs.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<RawRecord>, StreamError> {
    let mut stream = CsvStream::new();
    stream.push(bytes);
    stream.finish();
    let mut records = Vec::new();
    loop {
        match stream.next_record()? {
            Next::Record(r) => records.push(r),
            Next::NeedInput => unreachable!("the input is finished"),
            Next::End => return Ok(records),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cells(records: &[RawRecord]) -> Vec<Vec<&str>> {
        records
            .iter()
            .map(|r| r.fields.iter().map(String::as_str).collect())
            .collect()
    }

    fn lines(records: &[RawRecord]) -> Vec<u64> {
        records.iter().map(|r| r.line).collect()
    }

    /// Feeds `bytes` in pieces of `size` bytes, as chunks of a stored file arrive.
    fn parse_in_pieces(bytes: &[u8], size: usize) -> Result<Vec<RawRecord>, StreamError> {
        let mut stream = CsvStream::new();
        let mut pieces = bytes.chunks(size.max(1));
        let mut records = Vec::new();
        loop {
            match stream.next_record()? {
                Next::Record(r) => records.push(r),
                Next::NeedInput => match pieces.next() {
                    Some(p) => stream.push(p),
                    None => stream.finish(),
                },
                Next::End => return Ok(records),
            }
        }
    }

    #[test]
    fn quoted_cells_keep_embedded_commas_quotes_and_newlines() {
        let file = b"a,b,c\n\"Doe, Jane\",\"say \"\"hi\"\"\",\"two\nlines\"\nx,y,z\n";
        let records = parse_all(file).unwrap();
        assert_eq!(
            cells(&records),
            [
                vec!["a", "b", "c"],
                vec!["Doe, Jane", "say \"hi\"", "two\nlines"],
                vec!["x", "y", "z"]
            ]
        );
        assert_eq!(
            lines(&records),
            [1, 2, 4],
            "the record after a quoted newline starts on line 4"
        );
    }

    #[test]
    fn crlf_and_lf_files_give_the_same_records_and_lines() {
        let lf = parse_all(b"a,b\n1,2\n3,4\n").unwrap();
        let crlf = parse_all(b"a,b\r\n1,2\r\n3,4\r\n").unwrap();
        assert_eq!(lf, crlf);
        assert_eq!(lines(&crlf), [1, 2, 3]);
    }

    #[test]
    fn a_byte_order_mark_is_stripped() {
        let records = parse_all(b"\xEF\xBB\xBFuserName,email\r\njd,j@x.org\r\n").unwrap();
        assert_eq!(records[0].fields[0], "userName");
    }

    #[test]
    fn semicolons_are_detected_from_the_header_line() {
        let records = parse_all(b"userName;email;groups\njd;j@x.org;\"a,b\"\n").unwrap();
        assert_eq!(
            cells(&records),
            [
                vec!["userName", "email", "groups"],
                vec!["jd", "j@x.org", "a,b"]
            ]
        );
        assert_eq!(
            detect_delimiter(b"\"a;b;c\",d"),
            b',',
            "quoted ; do not count"
        );
    }

    #[test]
    fn cells_are_trimmed() {
        let records = parse_all(b"a , b\n  x  ,\" y \"\t\n").unwrap();
        assert_eq!(cells(&records), [vec!["a", "b"], vec!["x", "y"]]);
    }

    #[test]
    fn blank_lines_are_skipped_and_counted() {
        let records = parse_all(b"a,b\n\n\r\n1,2\n\n3,4").unwrap();
        assert_eq!(
            cells(&records),
            [vec!["a", "b"], vec!["1", "2"], vec!["3", "4"]]
        );
        assert_eq!(lines(&records), [1, 4, 6]);
    }

    #[test]
    fn a_last_line_without_newline_is_a_record() {
        let records = parse_all(b"a,b\n1,2").unwrap();
        assert_eq!(records.len(), 2);
        assert!(parse_all(b"").unwrap().is_empty());
        assert!(parse_all(b"\xEF\xBB\xBF").unwrap().is_empty());
    }

    #[test]
    fn a_record_too_long_is_refused_without_holding_the_file() {
        let mut file = b"a\n\"".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        assert_eq!(
            parse_in_pieces(&file, 65536),
            Err(StreamError::RecordTooLong { line: 2 })
        );
        let wide = ",".repeat(MAX_FIELDS + 1);
        assert_eq!(
            parse_all(wide.as_bytes()),
            Err(StreamError::TooManyFields { line: 1 })
        );
    }

    #[test]
    fn lines_are_where_records_start_even_after_crlf_inside_quotes() {
        // The csv crate's `Position::line()` counts some CRLF terminators late (it would say
        // 5 for the last record); reports need the physical line, so this parser counts every
        // `\n` it consumes.
        let file = b"h1,h2\n\"a\nb\",c\nd,\"e\r\nf\"\r\ng,h\n";
        assert_eq!(lines(&parse_all(file).unwrap()), [1, 2, 4, 6]);
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_pieces_parse_alike_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            size in 1usize..40,
        ) {
            let whole = parse_all(&bytes);
            let pieces = parse_in_pieces(&bytes, size);
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn csv_like_text_parses_as_the_csv_crate_does(
            rows in proptest::collection::vec(
                proptest::collection::vec("[a-z ,;\"\n]{0,6}", 1..4), 1..6),
            crlf in any::<bool>(),
            size in 1usize..30,
        ) {
            // Written by the csv crate itself (so quoting is valid), then read back.
            let mut writer = csv::WriterBuilder::new()
                .flexible(true)
                .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
                .from_writer(Vec::new());
            let header: Vec<String> = (0..rows[0].len()).map(|i| format!("h{i}")).collect();
            writer.write_record(&header).unwrap();
            for r in &rows {
                writer.write_record(r).unwrap();
            }
            let bytes = writer.into_inner().unwrap();
            let ours = parse_in_pieces(&bytes, size).unwrap();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&bytes[..]);
            let raw: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(str::to_owned).collect())
                .collect();
            // Lines: each record starts one line after the previous one ended.
            let mut expected_line = 1;
            for (r, cells) in ours.iter().zip(&raw) {
                prop_assert_eq!(r.line, expected_line);
                expected_line += cells.iter().map(|f| f.matches('\n').count() as u64).sum::<u64>() + 1;
            }
            let theirs: Vec<Vec<String>> = raw
                .iter()
                .map(|r| r.iter().map(|c| c.trim().to_owned()).collect())
                .collect();
            let ours: Vec<Vec<String>> = ours.into_iter().map(|r| r.fields).collect();
            prop_assert_eq!(ours, theirs);
        }
    }
}
