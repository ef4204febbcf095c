//! huddle-sip
