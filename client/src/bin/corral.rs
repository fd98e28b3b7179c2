//! `corral`: the command-line client for a Corral ensemble, in the style of
//! ZooKeeper's zkCli and etcdctl.
//!
//! ```text
//! corral create [-e] [-s] [-c] [--ttl MS] PATH [DATA]   Created <path>
//! corral get [-s] PATH                                  the data (raw bytes), with -s the Stat
//! corral set [-s] [-v VERSION] PATH DATA
//! corral delete [-v VERSION] PATH
//! corral ls [-R] PATH                                   one child per line; -R every descendant
//! corral stat PATH                                      the Stat, as zkCli prints it
//! corral watch [-R] PATH                                one line per event until Ctrl-C
//! corral status                                         members, roles, leader, term, zxids
//! corral lock [--wait D] NAME [-- COMMAND...]           run COMMAND holding the lock; its exit status
//! corral elect NAME VALUE | elect -l NAME               campaign / observe: `leader VALUE` per change
//! corral queue put [-p PRIO] NAME DATA | take NAME | len NAME
//! ```
//!
//! Global options: `--endpoints host:port,...` (env `CORRAL_ENDPOINTS`, default
//! the dev ensemble's `127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003`),
//! `--timeout` (env `CORRAL_TIMEOUT`) and `--consistency`.
//!
//! Failures print `Error: <ZooKeeper code name>: <message>` to stderr and exit
//! with status 1; usage errors exit with status 2. `create -e` stays in the
//! foreground holding its session (and so its node) until Ctrl-C or SIGTERM;
//! so does `watch`, printing events.
//!
//! The implementation lives in `client/src/cli/`; this file only hands over to it.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
