//! openraft RaftStateMachine (being written).
