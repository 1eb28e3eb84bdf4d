//! The smallest useful embedding: an echo server that drains on ctrl-c.
//!
//! `cargo run --example minimal`, then `nc 127.0.0.1 7879` in another
//! terminal, then ctrl-c here.

use std::io;

use graceful_server::Server;

fn main() -> Result<(), graceful_server::Error> {
    let server = Server::builder("127.0.0.1:7879").build()?;
    server.shutdown_handle().install_ctrl_c()?;
    println!("listening on {}", server.local_addr());
    let report = server.serve(|stream, _conn| {
        let (mut reader, mut writer) = (&stream, &stream);
        io::copy(&mut reader, &mut writer).map(drop)
    })?;
    eprintln!("{report}");
    Ok(())
}
