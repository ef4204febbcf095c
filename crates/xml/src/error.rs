//! The error type, and the collector that gathers errors and warnings while a document is
//! checked so that every problem is reported at once.

use std::fmt;

use crate::position::Locator;

/// One problem in a document, with its position.
///
/// Displayed as `line L, column C: <Element> attribute `attr` = "value": message (allowed: ...)`,
/// leaving out the parts that do not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Described(self))]
pub struct XmlError {
    /// 1-based line of the element or attribute at fault.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// The element at fault, as written (`MultiPartyCall`).
    pub element: Option<String>,
    /// The attribute at fault, as written (`maxDuration`).
    pub attribute: Option<String>,
    /// The offending value (attribute value or element text), trimmed and shortened.
    pub value: Option<String>,
    /// What would have been accepted (`true, false`, `300 to 28800`, ...).
    pub allowed: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Display helper: thiserror formats through it so the optional parts can be left out.
struct Described<'a>(&'a XmlError);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "line {}, column {}: ", e.line, e.column)?;
        let mut subject = false;
        if let Some(element) = &e.element {
            write!(f, "<{element}>")?;
            subject = true;
        }
        if let Some(attribute) = &e.attribute {
            if subject {
                f.write_str(" ")?;
            }
            write!(f, "attribute `{attribute}`")?;
            subject = true;
        }
        if let Some(value) = &e.value {
            if subject {
                f.write_str(" ")?;
            }
            // Without an attribute the value is the element's text.
            if e.attribute.is_some() {
                write!(f, "= {value:?}")?;
            } else {
                write!(f, "text {value:?}")?;
            }
            subject = true;
        }
        if subject {
            f.write_str(": ")?;
        }
        f.write_str(&e.message)?;
        if let Some(allowed) = &e.allowed {
            write!(f, " (allowed: {allowed})")?;
        }
        Ok(())
    }
}

/// Longest value quoted in an error; longer ones are cut so a 100 KB attribute does not make a
/// 100 KB message.
const MAX_QUOTED_CHARS: usize = 120;

/// Shortens `value` for quoting in an error message.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

/// An error before its byte offset has been turned into a line and column.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// Byte offset into the (BOM-stripped) input.
    pub offset: usize,
    pub element: Option<String>,
    pub attribute: Option<String>,
    pub value: Option<String>,
    pub allowed: Option<String>,
    pub message: String,
}

impl Problem {
    /// A problem with just a position and a message.
    pub fn at(offset: usize, message: impl Into<String>) -> Self {
        Problem {
            offset,
            element: None,
            attribute: None,
            value: None,
            allowed: None,
            message: message.into(),
        }
    }

    /// Names the element at fault.
    pub fn element(mut self, name: &str) -> Self {
        self.element = Some(name.to_string());
        self
    }

    /// Names the attribute at fault.
    pub fn attribute(mut self, name: &str) -> Self {
        self.attribute = Some(name.to_string());
        self
    }

    /// Quotes the offending value (shortened).
    pub fn value(mut self, value: &str) -> Self {
        self.value = Some(quote(value));
        self
    }

    /// Says what would have been accepted.
    pub fn allowed(mut self, allowed: Option<String>) -> Self {
        self.allowed = allowed;
        self
    }

    fn locate(self, locator: &mut Locator<'_>) -> XmlError {
        let (line, column) = locator.locate(self.offset);
        XmlError {
            line,
            column,
            element: self.element,
            attribute: self.attribute,
            value: self.value,
            allowed: self.allowed,
            message: self.message,
        }
    }
}

/// Errors and warnings gathered during one parse.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Diagnostics {
    /// Records an error: the document will be rejected.
    pub fn error(&mut self, problem: Problem) {
        self.errors.push(problem);
    }

    /// Records a warning: reported, but the document is still accepted.
    pub fn warn(&mut self, problem: Problem) {
        self.warnings.push(problem);
    }

    /// Turns offsets into positions; errors (if any) or warnings, each sorted by position.
    pub fn finish(self, input: &str) -> Result<Vec<XmlError>, Vec<XmlError>> {
        let sorted = |mut list: Vec<Problem>| {
            // Stable: problems at one spot keep the order they were found in. Sorted offsets
            // also let the locator work in one pass.
            list.sort_by_key(|p| p.offset);
            let mut locator = Locator::new(input);
            list.into_iter()
                .map(|p| p.locate(&mut locator))
                .collect::<Vec<_>>()
        };
        if self.errors.is_empty() {
            Ok(sorted(self.warnings))
        } else {
            Err(sorted(self.errors))
        }
    }
}
