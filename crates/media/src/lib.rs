//! huddle-media
