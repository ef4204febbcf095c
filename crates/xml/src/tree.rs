//! XML syntax: turns the text into a small element tree, enforcing the hostile-input rules
//! (no DTDs, only predefined entities, bounded depth, a single `<Response>` root).
//!
//! Well-formedness failures are fatal: after one the reader cannot be trusted to resync, so
//! [`build`] returns `None`. Problems that leave the structure intact (a bad entity, an unquoted
//! attribute, stray text outside the root) are recorded and the walk continues.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::error::{quote, Diagnostics, Problem};
use crate::MAX_DEPTH;

/// An element with its attributes and content.
#[derive(Debug)]
pub(crate) struct Element {
    /// Name as written.
    pub name: String,
    /// Byte offset of its `<`.
    pub offset: usize,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

/// One attribute as written.
#[derive(Debug)]
pub(crate) struct Attr {
    /// Name as written.
    pub name: String,
    /// Unescaped value; `None` when unescaping failed (that error is already recorded).
    pub value: Option<String>,
    /// Byte offset of the attribute name.
    pub offset: usize,
}

/// Element content.
#[derive(Debug)]
pub(crate) enum Node {
    Element(Element),
    Text(Text),
}

/// A run of character data (text, entity and character references, CDATA) with the offset of
/// its first piece.
#[derive(Debug)]
pub(crate) struct Text {
    pub text: String,
    pub offset: usize,
}

impl Element {
    fn new(start: &BytesStart<'_>, offset: usize, diag: &mut Diagnostics) -> Self {
        let name = start.name().as_ref().to_string();
        let mut element = Element {
            name,
            offset,
            attrs: Vec::new(),
            children: Vec::new(),
        };
        element.read_attributes(start, diag);
        element
    }

    fn read_attributes(&mut self, start: &BytesStart<'_>, diag: &mut Diagnostics) {
        // quick-xml's own duplicate check is case-sensitive and quadratic; attrs.rs does a
        // case-insensitive one with a hash set instead.
        let content: &str = start;
        let base = content.as_ptr() as usize;
        // Offsets quick-xml reports are relative to the byte after `<`.
        let tag_start = self.offset + 1;
        for attr in start.attributes().with_checks(false) {
            match attr {
                Ok(attr) => {
                    let key = attr.key.as_ref();
                    let relative = (key.as_ptr() as usize)
                        .checked_sub(base)
                        .filter(|&r| r <= content.len())
                        .unwrap_or(0);
                    let offset = tag_start + relative;
                    let name = key.to_string();
                    let value = match attr.normalized_value(XmlVersion::Implicit1_0) {
                        Ok(value) => match forbidden_char(&value) {
                            None => Some(value.into_owned()),
                            Some(c) => {
                                diag.error(
                                    Problem::at(
                                        offset,
                                        format!(
                                            "character reference to U+{:04X}, which XML does not allow",
                                            c as u32
                                        ),
                                    )
                                    .element(&self.name)
                                    .attribute(&name),
                                );
                                None
                            }
                        },
                        Err(e) => {
                            diag.error(
                                Problem::at(offset, reference_message(&e.to_string()))
                                    .element(&self.name)
                                    .attribute(&name)
                                    .value(&attr.value)
                                    .allowed(Some(PREDEFINED.to_string())),
                            );
                            None
                        }
                    };
                    self.attrs.push(Attr {
                        name,
                        value,
                        offset,
                    });
                }
                Err(e) => {
                    use quick_xml::events::attributes::AttrError;
                    let (at, message) = match e {
                        AttrError::ExpectedEq(at) => (at, "attribute name without `=value`"),
                        AttrError::ExpectedValue(at) => (at, "attribute without a value"),
                        AttrError::UnquotedValue(at) => {
                            (at, "attribute value must be in quotes (\"...\" or '...')")
                        }
                        AttrError::ExpectedQuote(at, _) => {
                            (at, "attribute value has no closing quote")
                        }
                        AttrError::Duplicated(at, _) => (at, "duplicate attribute"),
                    };
                    diag.error(
                        Problem::at(tag_start + at, format!("malformed XML: {message}"))
                            .element(&self.name),
                    );
                }
            }
        }
    }

    /// Appends character data, joining it to a directly preceding run so that
    /// `Welcome &amp; thanks` stays one piece.
    fn push_text(&mut self, text: &str, offset: usize) {
        if let Some(Node::Text(last)) = self.children.last_mut() {
            last.text.push_str(text);
        } else {
            self.children.push(Node::Text(Text {
                text: text.to_string(),
                offset,
            }));
        }
    }
}

/// The references XML defines without a DTD.
const PREDEFINED: &str = "&amp; &lt; &gt; &quot; &apos; and character references like &#38;";

fn reference_message(detail: &str) -> String {
    format!("bad entity or character reference ({detail}); DTD entities are not supported")
}

/// The first character XML 1.0 forbids (C0 controls other than tab, LF, CR; U+FFFE; U+FFFF).
pub(crate) fn forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|&c| is_forbidden(c))
}

fn is_forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// The value of a predefined entity.
fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Whether `s` is only XML whitespace.
pub(crate) fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Parses `input` into the `<Response>` element tree.
///
/// Returns `None` after a fatal problem (already recorded in `diag`).
pub(crate) fn build(input: &str, diag: &mut Diagnostics) -> Option<Element> {
    // Control characters are checked up front: quick-xml passes them through, and nothing
    // after this point then has to worry about them in raw text.
    if let Some((at, c)) = input.char_indices().find(|&(_, c)| is_forbidden(c)) {
        diag.error(Problem::at(
            at,
            format!("character U+{:04X} is not allowed in XML", c as u32),
        ));
        return None;
    }

    let mut reader = Reader::from_str(input);
    // Defaults matter here: no text trimming (it would eat the spaces around `&amp;`), and
    // end-tag names are checked.
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;

    // Open elements, innermost last. Bounded by MAX_DEPTH.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut seen_markup = false;

    loop {
        let offset = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(offset);
                diag.error(Problem::at(at, format!("malformed XML: {e}")));
                return None;
            }
        };
        match event {
            Event::Decl(_) => {
                if seen_markup || offset != 0 {
                    diag.error(Problem::at(
                        offset,
                        "the XML declaration must be at the very start of the document",
                    ));
                }
            }
            Event::DocType(_) => {
                diag.error(Problem::at(
                    offset,
                    "DTDs are not allowed (<!DOCTYPE> found); entities must be the five predefined ones",
                ));
                return None;
            }
            Event::PI(_) => {
                diag.warn(Problem::at(offset, "processing instruction ignored"));
            }
            Event::Comment(_) => {}
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let name = start.name().as_ref().to_string();
                diag.error(Problem::at(offset, "content after </Response>").element(&name));
                return None;
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                if stack.len() >= MAX_DEPTH {
                    diag.error(Problem::at(
                        offset,
                        format!("elements nested more than {MAX_DEPTH} deep"),
                    ));
                    return None;
                }
                let element = Element::new(start, offset, diag);
                if stack.is_empty() && element.name != "Response" {
                    diag.error(
                        Problem::at(offset, "the root element must be <Response>")
                            .element(&element.name),
                    );
                    return None;
                }
                if is_empty {
                    close(element, &mut stack, &mut root);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                // quick-xml has already checked that the name matches.
                if let Some(element) = stack.pop() {
                    close(element, &mut stack, &mut root);
                }
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                add_text(&mut stack, &content, offset, diag);
            }
            Event::CData(cdata) => {
                let content = cdata.xml10_content();
                add_text(&mut stack, &content, offset, diag);
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) if is_forbidden(c) => Err(format!(
                        "character reference to U+{:04X}, which XML does not allow",
                        c as u32
                    )),
                    Ok(Some(c)) => Ok(c),
                    Ok(None) => predefined_entity(&reference).ok_or_else(|| {
                        format!(
                            "unknown entity `&{};`; DTD entities are not supported",
                            quote(&reference)
                        )
                    }),
                    Err(e) => Err(reference_message(&e.to_string())),
                };
                match resolved {
                    Ok(c) => add_text(&mut stack, c.encode_utf8(&mut [0; 4]), offset, diag),
                    Err(message) => {
                        let mut problem =
                            Problem::at(offset, message).allowed(Some(PREDEFINED.to_string()));
                        if let Some(open) = stack.last() {
                            problem = problem.element(&open.name);
                        }
                        diag.error(problem);
                    }
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    diag.error(
                        Problem::at(
                            input.len(),
                            format!("end of document inside <{}>: it is never closed", open.name),
                        )
                        .element(&open.name),
                    );
                    return None;
                }
                if root.is_none() {
                    diag.error(Problem::at(offset, "no <Response> element"));
                }
                return root;
            }
        }
        seen_markup = true;
    }
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// Adds character data to the open element; outside the root only whitespace is allowed.
fn add_text(stack: &mut [Element], text: &str, offset: usize, diag: &mut Diagnostics) {
    match stack.last_mut() {
        Some(open) => open.push_text(text, offset),
        None if is_blank(text) => {}
        None => diag.error(Problem::at(offset, "text outside <Response>").value(text.trim())),
    }
}
