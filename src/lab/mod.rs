//! Labs: lab files, the embedded default lab, and the namespaces and TUN devices a lab is made
//! of (creation and teardown).
pub mod file;
