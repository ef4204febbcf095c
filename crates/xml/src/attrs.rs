//! One element's attributes: names matched case-insensitively against the element's known
//! set, duplicates and unknown names reported, and typed getters that record bad values.

use std::collections::HashSet;

use crate::error::{Diagnostics, Problem};
use crate::model::{HttpMethod, UrlWithMethod};
use crate::tree::{Attr, Element};
use crate::values::{self, trim, Invalid, ValueResult};

/// The attributes of one element, looked up by their canonical (documented) names.
pub(crate) struct Attrs<'a> {
    element: &'a Element,
    known: &'static [&'static str],
    /// `slots[i]` is the attribute written for `known[i]`, if any.
    slots: Vec<Option<&'a Attr>>,
}

impl<'a> Attrs<'a> {
    /// Matches the attributes of `element` against `known`: unknown names are warned about and
    /// ignored, a name given twice (in any case) is an error and its later copies are ignored.
    pub fn new(
        element: &'a Element,
        known: &'static [&'static str],
        diag: &mut Diagnostics,
    ) -> Self {
        let mut slots = vec![None; known.len()];
        // Lower-cased names seen so far, for duplicates among unknown attributes too. A hash set
        // keeps a tag with thousands of attributes linear.
        let mut seen: HashSet<String> = HashSet::new();
        for attr in &element.attrs {
            if !seen.insert(attr.name.to_ascii_lowercase()) {
                diag.error(
                    Problem::at(
                        attr.offset,
                        "duplicate attribute (names are case-insensitive)",
                    )
                    .element(&element.name)
                    .attribute(&attr.name),
                );
                continue;
            }
            match known
                .iter()
                .position(|k| k.eq_ignore_ascii_case(&attr.name))
            {
                Some(i) => slots[i] = Some(attr),
                None => diag.warn(
                    Problem::at(attr.offset, "unknown attribute ignored")
                        .element(&element.name)
                        .attribute(&attr.name),
                ),
            }
        }
        Attrs {
            element,
            known,
            slots,
        }
    }

    /// The written attribute and its trimmed value, for canonical `name`. `None` when absent or
    /// when its value could not be unescaped (already reported).
    fn raw(&self, name: &str) -> Option<(&'a Attr, &'a str)> {
        let i = self.known.iter().position(|k| *k == name)?;
        let attr = self.slots.get(i).copied().flatten()?;
        let value = attr.value.as_deref()?;
        Some((attr, trim(value)))
    }

    /// Whether the attribute was written at all (even with an unusable value).
    pub fn present(&self, name: &str) -> bool {
        self.known
            .iter()
            .position(|k| *k == name)
            .and_then(|i| self.slots.get(i).copied().flatten())
            .is_some()
    }

    /// Where attribute `name` was written (its byte offset), if it was.
    pub fn offset(&self, name: &str) -> Option<usize> {
        self.raw(name).map(|(attr, _)| attr.offset)
    }

    /// Records a problem with attribute `attr`.
    pub fn report(&self, attr: &Attr, value: &str, invalid: Invalid, diag: &mut Diagnostics) {
        diag.error(
            Problem::at(attr.offset, invalid.message)
                .element(&self.element.name)
                .attribute(&attr.name)
                .value(value)
                .allowed(invalid.allowed),
        );
    }

    /// Parses attribute `name` with `parse`; `None` when absent or invalid (invalid is reported).
    pub fn get<T>(
        &self,
        name: &str,
        diag: &mut Diagnostics,
        parse: impl FnOnce(&str) -> ValueResult<T>,
    ) -> Option<T> {
        let (attr, value) = self.raw(name)?;
        match parse(value) {
            Ok(v) => Some(v),
            Err(invalid) => {
                self.report(attr, value, invalid, diag);
                None
            }
        }
    }

    /// A boolean attribute with its default.
    pub fn boolean(&self, name: &str, default: bool, diag: &mut Diagnostics) -> bool {
        self.get(name, diag, values::boolean).unwrap_or(default)
    }

    /// A `GET`/`POST` attribute with its default.
    pub fn method(&self, name: &str, default: HttpMethod, diag: &mut Diagnostics) -> HttpMethod {
        self.get(name, diag, values::method).unwrap_or(default)
    }

    /// An integer attribute in `min..=max`.
    pub fn integer(&self, name: &str, min: u32, max: u32, diag: &mut Diagnostics) -> Option<u32> {
        self.get(name, diag, |v| values::integer(v, min, max))
    }

    /// A free-form string attribute, trimmed.
    pub fn string(&self, name: &str) -> Option<String> {
        self.raw(name).map(|(_, v)| v.to_string())
    }

    /// An http(s) URL attribute.
    pub fn url(&self, name: &str, diag: &mut Diagnostics) -> Option<String> {
        self.get(name, diag, values::http_url)
    }

    /// A URL attribute and its `*Method` partner. The method is checked even without the URL
    /// (SDKs always write it) but only kept with one.
    pub fn url_with_method(
        &self,
        url: &str,
        method: &str,
        default: HttpMethod,
        diag: &mut Diagnostics,
    ) -> Option<UrlWithMethod> {
        let method = self.method(method, default, diag);
        self.url(url, diag).map(|url| UrlWithMethod { url, method })
    }
}
