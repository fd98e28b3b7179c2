//! openraft RaftLogStorage (being written).
