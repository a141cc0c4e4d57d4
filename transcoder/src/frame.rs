//! gRPC's length-prefixed message, the frame a unary call's request and answer each travel in:
//! one byte of compressed flag, the message's length (big-endian u32), the message. One reader
//! and one writer for both sides of a call (the edge's [`Upstream`](crate::Upstream) and a
//! service answering encoded bytes); each side turns what [`first`] finds into its own status.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The frame's header: the compressed flag and the length.
pub const HEADER: usize = 5;

/// A buffer holding the header of an uncompressed `len`-byte message, with room for the
/// message after it: the message is written into the same buffer, not copied in afterwards.
pub fn with_header(len: u32) -> BytesMut {
    let mut frame = BytesMut::with_capacity(HEADER + len as usize);
    frame.put_u8(0); // not compressed
    frame.put_u32(len);
    frame
}

/// What the first frame of a body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct First {
    /// The compressed flag (0: not compressed).
    pub flag: u8,
    /// The length the header declares.
    pub declared: usize,
    /// The message, or as much of it as the body holds (shorter than `declared` if truncated).
    pub message: Bytes,
    /// How many bytes follow the message (another frame's, for a stream).
    pub trailing: usize,
}

/// The first frame of `data`; `None` if `data` is shorter than a header.
pub fn first(mut data: Bytes) -> Option<First> {
    if data.len() < HEADER {
        return None;
    }
    let flag = data[0];
    let declared = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    data.advance(HEADER);
    let trailing = data.len().saturating_sub(declared);
    data.truncate(declared);
    Some(First {
        flag,
        declared,
        message: data,
        trailing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_written_reads_back_and_a_partial_one_says_what_is_missing() {
        let mut frame = with_header(3);
        frame.put_slice(b"abc");
        let frame = frame.freeze();
        assert_eq!(&frame[..], b"\0\0\0\0\x03abc");
        let whole = First {
            flag: 0,
            declared: 3,
            message: Bytes::from_static(b"abc"),
            trailing: 0,
        };
        assert_eq!(first(frame.clone()), Some(whole));
        let cut = first(frame.slice(..6)).unwrap();
        assert_eq!((cut.declared, &cut.message[..]), (3, &b"a"[..]));
        let two = first(Bytes::from([&frame[..], &frame[..]].concat())).unwrap();
        assert_eq!((&two.message[..], two.trailing), (&b"abc"[..], 8));
        assert_eq!(first(frame.slice(..4)), None);
    }
}
