//! `<Conference>`: Plivo's older conference verb, parsed into what the MPC room engine runs
//! (see [`Conference`]). Attributes the room engine has no counterpart for are accepted and
//! warned about, so that an application learns they have no effect.

use crate::attrs::Attrs;
use crate::error::{Diagnostics, Problem};
use crate::model::{Conference, HttpMethod, UrlWithMethod};
use crate::tree::Element;
use crate::values;
use crate::verbs::text_only;

/// Every attribute `<Conference>` understands.
const ATTRIBUTES: &[&str] = &[
    "muted",
    "enterSound",
    "exitSound",
    "startConferenceOnEnter",
    "endConferenceOnExit",
    "stayAlone",
    "waitSound",
    "waitSoundMethod",
    "maxMembers",
    "record",
    "recordFileFormat",
    "recordWhenAlone",
    "timeLimit",
    "hangupOnStar",
    "action",
    "method",
    "callbackUrl",
    "callbackMethod",
    "digitsMatch",
    "floorEvent",
    "redirect",
    "relayDTMF",
    "transcriptionType",
    "transcriptionUrl",
    "transcriptionMethod",
];

/// Attributes accepted without effect, and the value that is already what happens here.
const WITHOUT_EFFECT: &[(&str, &str)] = &[
    ("recordWhenAlone", "false"),
    ("hangupOnStar", "false"),
    ("callbackUrl", ""),
    ("digitsMatch", ""),
    ("floorEvent", "false"),
    ("redirect", "true"),
    ("transcriptionType", ""),
    ("transcriptionUrl", ""),
];

/// Parses a `<Conference>` element.
pub(crate) fn conference(element: &Element, diag: &mut Diagnostics) -> Conference {
    let a = Attrs::new(element, ATTRIBUTES, diag);
    let text = text_only(element, diag);
    let name = values::mpc_name(&text).unwrap_or_else(|invalid| {
        diag.error(
            Problem::at(element.offset, invalid.message.replace("MPC", "conference"))
                .element(&element.name)
                .value(&text)
                .allowed(invalid.allowed),
        );
        text.clone()
    });
    let d = Conference::new("");
    let mut c = Conference::new(name);
    c.muted = a.boolean("muted", d.muted, diag);
    if let Some(sound) = a.get("enterSound", diag, conference_sound) {
        c.enter_sound = sound;
    }
    if let Some(sound) = a.get("exitSound", diag, conference_sound) {
        c.exit_sound = sound;
    }
    c.start_conference_on_enter =
        a.boolean("startConferenceOnEnter", d.start_conference_on_enter, diag);
    c.end_conference_on_exit = a.boolean("endConferenceOnExit", d.end_conference_on_exit, diag);
    c.stay_alone = a.boolean("stayAlone", d.stay_alone, diag);
    c.wait_sound = a.url_with_method("waitSound", "waitSoundMethod", HttpMethod::Get, diag);
    // Plivo allows up to 20; the room engine's limit is 10 members.
    c.max_members = a
        .integer("maxMembers", 2, 10, diag)
        .unwrap_or(d.max_members);
    c.record = a.boolean("record", d.record, diag);
    c.record_file_format = a
        .get("recordFileFormat", diag, values::record_format)
        .unwrap_or(d.record_file_format);
    c.time_limit_secs = a
        .integer("timeLimit", 300, 28_800, diag)
        .unwrap_or(d.time_limit_secs);
    let method = a.method("method", HttpMethod::Post, diag);
    c.action = a
        .url("action", diag)
        .map(|url| UrlWithMethod { url, method });
    c.relay_dtmf = a.boolean("relayDTMF", d.relay_dtmf, diag);

    // Checked like everywhere else, then reported as having no effect.
    a.boolean("recordWhenAlone", false, diag);
    a.boolean("hangupOnStar", false, diag);
    a.boolean("floorEvent", false, diag);
    a.boolean("redirect", true, diag);
    a.url_with_method("callbackUrl", "callbackMethod", HttpMethod::Post, diag);
    a.url_with_method(
        "transcriptionUrl",
        "transcriptionMethod",
        HttpMethod::Post,
        diag,
    );
    for (name, harmless) in WITHOUT_EFFECT {
        if let Some(value) = a.string(name) {
            if !value.eq_ignore_ascii_case(harmless) {
                diag.warn(
                    Problem::at(
                        element.offset,
                        "accepted without effect: a conference here is an MPC, which has no such feature",
                    )
                    .element(&element.name)
                    .attribute(name)
                    .value(&value),
                );
            }
        }
    }
    c
}

/// `enterSound` / `exitSound`: as for an MPC, plus Plivo conference's empty value for none.
fn conference_sound(s: &str) -> values::ValueResult<crate::model::Sound> {
    if s.is_empty() {
        return Ok(crate::model::Sound::None);
    }
    values::sound(s)
}
