//! huddle-sdp
