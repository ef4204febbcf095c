//! Byte offsets to line and column numbers.

/// Turns byte offsets into 1-based line and column (in characters) numbers.
///
/// Offsets should be asked for in increasing order: each call then only scans the text since
/// the previous one, so locating thousands of errors on one long line stays linear.
pub(crate) struct Locator<'a> {
    input: &'a str,
    /// Last position handed out: byte offset, line, byte offset of that line's start, column.
    offset: usize,
    line: usize,
    line_start: usize,
    column: usize,
}

impl<'a> Locator<'a> {
    /// A locator at the start of `input`.
    pub fn new(input: &'a str) -> Self {
        Locator {
            input,
            offset: 0,
            line: 1,
            line_start: 0,
            column: 1,
        }
    }

    /// Line and column of byte `offset`; offsets past the end point just after the last
    /// character, and an offset inside a multi-byte character counts that character as before.
    pub fn locate(&mut self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.input.len());
        if offset < self.offset {
            // Out of order: start again from the top (correct, just not incremental).
            *self = Locator::new(self.input);
        }
        let bytes = &self.input.as_bytes()[self.offset..offset];
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.offset + i + 1;
                self.column = 1;
            } else if (b & 0xC0) != 0x80 {
                // Not a UTF-8 continuation byte: a new character.
                self.column += 1;
            }
        }
        self.offset = offset;
        (saturate(self.line), saturate(self.column))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::Locator;

    #[test]
    fn lines_and_columns() {
        let text = "ab\ncé\n\nx";
        let mut at = Locator::new(text);
        assert_eq!(at.locate(0), (1, 1));
        assert_eq!(at.locate(2), (1, 3));
        assert_eq!(at.locate(3), (2, 1));
        assert_eq!(at.locate(6), (2, 3));
        assert_eq!(at.locate(8), (4, 1));
        assert_eq!(at.locate(100), (4, 2));
        // Going back still works.
        assert_eq!(at.locate(4), (2, 2));
    }
}
