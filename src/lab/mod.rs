//! Labs: lab files, the embedded default lab, the namespaces and TUN devices a lab is made of
//! (creation and teardown), and the daemon that runs one.
pub mod control;
pub mod daemon;
pub mod file;
pub mod journal;
pub mod lock;
pub mod setup;
