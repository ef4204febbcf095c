//! huddle-config
