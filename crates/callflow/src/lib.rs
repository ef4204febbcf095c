//! huddle-callflow
