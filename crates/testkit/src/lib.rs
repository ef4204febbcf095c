//! huddle-testkit
