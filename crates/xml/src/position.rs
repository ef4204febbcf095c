//! Byte offsets to line and column numbers.

/// Start offsets of every line of a document, to turn byte offsets into positions.
pub(crate) struct LineIndex<'a> {
    input: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `input` (one pass; one entry per line).
    pub fn new(input: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            input
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { input, line_starts }
    }

    /// 1-based line and column (in characters) of byte `offset`; offsets past the end point
    /// just after the last character.
    pub fn line_column(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.input.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        // The offset may fall inside a multi-byte character: count whole characters before it.
        let column = self.input.as_bytes()[start..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        (saturate(line), saturate(column + 1))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
