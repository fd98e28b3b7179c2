//! The data tree: ZooKeeper's znode model, pure and synchronous.
//! (Being written: see txn.rs for the types it applies.)

mod txn;

pub use txn::*;
