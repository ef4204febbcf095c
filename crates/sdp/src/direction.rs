//! The media direction attributes of RFC 4566 §6 and their offer/answer rules (RFC 3264 §6.1).

/// Which way media flows, from the point of view of the side that wrote the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (also the default when no direction is given).
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// Reads an attribute name; `None` for anything that is not a direction.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Builds a direction from whether the side sends and whether it receives.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The answer to this offered direction when the answerer is willing to do anything
    /// (RFC 3264 §6.1): sendonly → recvonly, recvonly → sendonly, the others unchanged.
    pub fn answer(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both sides allow: sends only if both allow sending, receives only if both allow
    /// receiving. Used to narrow an answer by what the local side wants (e.g. our own hold).
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name, as written after `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the side with this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side with this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Direction; 4] = [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ];

    #[test]
    fn answers_follow_rfc3264() {
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.answer(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        assert_eq!(Direction::SendRecv.answer(), Direction::SendRecv);
    }

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(Direction::from_attribute(d.as_str()), Some(d));
            assert_eq!(Direction::from_flags(d.sends(), d.receives()), d);
        }
        assert_eq!(Direction::from_attribute("rtpmap"), None);
    }

    #[test]
    fn intersection_narrows() {
        assert_eq!(
            Direction::SendRecv.intersect(Direction::SendOnly),
            Direction::SendOnly
        );
        assert_eq!(
            Direction::RecvOnly.intersect(Direction::SendOnly),
            Direction::Inactive
        );
        for d in ALL {
            assert_eq!(d.intersect(Direction::SendRecv), d);
        }
    }
}
