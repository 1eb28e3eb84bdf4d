//! The Ctrl-C opt-in is explicit and fallible. In its own test binary
//! because a handler, once installed, belongs to the whole process. No signal
//! is ever sent to the test process: the signal tests run the binary.

use graceful_server::{Error, Server};

#[test]
fn a_second_handler_is_an_error_not_a_panic() {
    let first = Server::builder("127.0.0.1:0").build().expect("build");
    let second = Server::builder("127.0.0.1:0").build().expect("build");
    first
        .shutdown_handle()
        .install_ctrl_c()
        .expect("the first handler installs");
    let error = second
        .shutdown_handle()
        .install_ctrl_c()
        .expect_err("a process has one ctrl-c handler");
    assert!(matches!(error, Error::CtrlC(_)), "{error:?}");
    assert_eq!(error.to_string(), "cannot install the ctrl-c handler");
    // Installing touched neither server's state.
    assert!(!first.shutdown_handle().is_shutting_down());
    assert!(!second.shutdown_handle().is_shutting_down());
}
