//! huddle-api
