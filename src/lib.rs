//! vpcsim: a packet-level simulator of the AWS VPC data plane around gateway endpoints to S3.
pub mod dataplane;
pub mod fib;
pub mod io;
pub mod lab;
pub mod model;
pub mod packet;
pub mod policy;
pub mod services;
