//! The command lines of both binaries, in the library so that the man pages and shell
//! completions can be generated from the same clap definitions the binaries parse.

pub mod ctl;
pub mod daemon;
