//! The inputs: tailed files (one thread each, woken by notify or a timer) and datagram
//! sockets. Each turns what it reads into `Record`s on one channel to the shipping pipeline.

pub mod datagram;
pub mod follow;
pub mod tail;
