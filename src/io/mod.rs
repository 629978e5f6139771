//! The I/O shell of the data plane: entering namespaces, attaching to the lab's TUN devices,
//! and the blocking worker threads that read a TUN, call the pipeline, and write where it says.
//!
//! Invariants: a thread that enters a namespace is a thread made for it ([`netns::run_in`]), so
//! no tokio worker or the main thread ever leaves the root namespace. A TUN is opened only from
//! a thread inside its namespace (a device's namespace is fixed when `/dev/net/tun` is opened).
pub mod fd;
pub mod netns;
pub mod sockopt;
pub mod worker;
