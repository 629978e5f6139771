//! The services of a lab: the S3 stub (in the aws namespace), the internet echo host, the
//! control API (root namespace, loopback only), and the object store behind S3.
pub mod access;
pub mod api;
pub mod checksum;
pub mod dns;
pub mod ec2;
pub mod echo;
pub mod http;
pub mod s3;
pub mod sigv4;
pub mod store;
pub mod tls;
