//! The smallest useful embedding: an echo server that drains on ctrl-c.
//!
//! `cargo run --example minimal`, then `nc 127.0.0.1 7879` in another
//! terminal, then ctrl-c here.

use std::io::{self, Read, Write};

use graceful_server::{Connection, Next, Server};

/// One turn: what arrived goes back; then wait for more, mid-conversation.
fn echo(conn: &mut Connection) -> io::Result<Next> {
    let mut buf = [0; 4096];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Ok(Next::Close); // the client hung up
    }
    conn.write_all(&buf[..n])?;
    Ok(Next::Wait)
}

fn main() -> Result<(), graceful_server::Error> {
    let server = Server::builder("127.0.0.1:7879").build()?;
    server.shutdown_handle().install_ctrl_c()?;
    println!("listening on {}", server.local_addr());
    let report = server.serve(echo)?;
    eprintln!("{report}");
    Ok(())
}
