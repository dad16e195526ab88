//! CSV rows of any delimiter, re-encoded as comma-separated rows: what a UDF reading
//! `format = "csv"` receives, whatever the file's dialect.
//!
//! Each line is parsed with the file's delimiter (quotes and `""` escapes honoured, by `csv-core`)
//! and written back with commas, quoting only the fields that need it (RFC 4180). A row that is
//! already comma-separated is passed through by the reader without coming here.

use csv_core::{
    ReadRecordResult, Reader, ReaderBuilder, Terminator, WriteResult, Writer, WriterBuilder,
};

/// Re-encodes rows of one delimiter as comma-separated rows, reusing its buffers row after row.
pub(crate) struct CommaRecoder {
    reader: Reader,
    /// A fresh writer (it keeps per-record quoting state): cloned for every row.
    writer: Writer,
    /// The unescaped bytes of the row's fields, one after another.
    fields: Vec<u8>,
    /// Where each field ends in `fields`.
    ends: Vec<usize>,
    /// The re-encoded row.
    row: Vec<u8>,
}

impl CommaRecoder {
    pub(crate) fn new(delimiter: u8) -> CommaRecoder {
        CommaRecoder {
            // A line holds no `\n`; any `\r` left in it is data, not the end of the row.
            reader: ReaderBuilder::new()
                .delimiter(delimiter)
                .terminator(Terminator::Any(b'\n'))
                .build(),
            writer: WriterBuilder::new().delimiter(b',').build(),
            fields: vec![0; 256],
            ends: vec![0; 16],
            row: Vec::new(),
        }
    }

    /// `line` (one row without its line ending) as a comma-separated row. An empty line stays
    /// empty.
    pub(crate) fn recode(&mut self, line: &[u8]) -> &[u8] {
        let fields = self.parse(line);
        self.row.clear();
        if fields == 0 {
            return &self.row;
        }
        // The most a row can take: every byte a doubled quote, each field's two quotes and a
        // delimiter, and two bytes for a row of one empty field (written `""`).
        let most = 2 * self.ends[fields - 1] + 3 * fields + 2;
        self.row.resize(most, 0);
        let mut writer = self.writer.clone();
        let mut at = 0;
        let mut start = 0;
        for (i, &end) in self.ends[..fields].iter().enumerate() {
            if i > 0 {
                let (result, n) = writer.delimiter(&mut self.row[at..]);
                debug_assert_eq!(result, WriteResult::InputEmpty);
                at += n;
            }
            let (result, _, n) = writer.field(&self.fields[start..end], &mut self.row[at..]);
            debug_assert_eq!(result, WriteResult::InputEmpty);
            at += n;
            start = end;
        }
        let (result, n) = writer.finish(&mut self.row[at..]);
        debug_assert_eq!(result, WriteResult::InputEmpty);
        at += n;
        self.row.truncate(at);
        &self.row
    }

    /// Parses `line` into `fields` and `ends`; returns how many fields it has.
    fn parse(&mut self, line: &[u8]) -> usize {
        self.reader.reset();
        let (mut input, mut out, mut fields) = (line, 0, 0);
        // After the line, an empty input tells the reader the row is complete (a quote left open
        // ends there: csv-core prefers a parse to an error, as the line reader did before).
        let mut finished = false;
        loop {
            let (result, nin, nout, nend) =
                self.reader
                    .read_record(input, &mut self.fields[out..], &mut self.ends[fields..]);
            input = &input[nin..];
            out += nout;
            fields += nend;
            match result {
                ReadRecordResult::InputEmpty if !finished => finished = input.is_empty(),
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let len = self.fields.len();
                    self.fields.resize(len * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                ReadRecordResult::Record | ReadRecordResult::End => return fields,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recode(delimiter: u8, line: &str) -> String {
        let mut recoder = CommaRecoder::new(delimiter);
        String::from_utf8(recoder.recode(line.as_bytes()).to_vec()).unwrap()
    }

    #[test]
    fn rows_of_any_delimiter_come_out_comma_separated() {
        assert_eq!(
            recode(b';', "ACME;2024-01-02;10.5;7"),
            "ACME,2024-01-02,10.5,7"
        );
        assert_eq!(recode(b'\t', "a\tb\t\tc"), "a,b,,c");
        assert_eq!(recode(b'|', "only"), "only");
        assert_eq!(recode(b';', ";;"), ",,");
        assert_eq!(recode(b';', ""), "");
        // A carriage return inside a line is data (quoted, since it would end a row elsewhere).
        assert_eq!(recode(b';', "a\rb;c"), "\"a\rb\",c");
    }

    #[test]
    fn quoting_is_read_in_the_file_dialect_and_written_as_rfc_4180() {
        // The file's delimiter inside quotes is data; it needs no quotes with commas.
        assert_eq!(recode(b';', "\"x;y\";z"), "x;y,z");
        // A comma in a field is quoted on the way out.
        assert_eq!(recode(b';', "1,5;2"), "\"1,5\",2");
        // Escaped quotes stay escaped.
        assert_eq!(recode(b';', "\"say \"\"hi\"\"\";x"), "\"say \"\"hi\"\"\",x");
        // An open quote runs to the end of the line rather than failing the row.
        assert_eq!(recode(b';', "\"open;end"), "open;end");
    }

    #[test]
    fn buffers_grow_for_long_rows_and_are_reused() {
        let mut recoder = CommaRecoder::new(b';');
        let fields: Vec<String> = (0..100)
            .map(|i| format!("{i}\"{}", "x".repeat(i)))
            .collect();
        let line = fields
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(";");
        let want = fields
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(recoder.recode(line.as_bytes()), want.as_bytes());
        assert_eq!(recoder.recode(b"a;b"), b"a,b");
    }
}
