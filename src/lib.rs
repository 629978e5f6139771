//! vpcsim: a packet-level simulator of the AWS VPC data plane around gateway endpoints to S3.
pub mod lab;
pub mod model;
