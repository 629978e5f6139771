//! Socket options that std and tokio do not set.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// Sets `TCP_USER_TIMEOUT` (tcp(7)): "the maximum amount of time in milliseconds that
/// transmitted data may remain unacknowledged, or buffered data may remain untransmitted (due
/// to zero window size) before TCP will forcibly close the corresponding connection". So a
/// peer that stops reading (its window stays closed) or vanishes is dropped after `timeout`,
/// while one that reads slowly, opening its window now and then, is not.
pub fn set_tcp_user_timeout(sock: &impl AsFd, timeout: Duration) -> io::Result<()> {
    let ms = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: the descriptor is borrowed open for the call; the option value is a `c_uint`
    // that lives across it, and its size is passed with it, as setsockopt(2) asks.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&raw const ms).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_set() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        set_tcp_user_timeout(&s, Duration::from_millis(1500)).unwrap();
        let mut got: libc::c_uint = 0;
        let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
        // SAFETY: as above; `got` and `len` outlive the call.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                (&raw mut got).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, got), (0, 1500));
    }
}
