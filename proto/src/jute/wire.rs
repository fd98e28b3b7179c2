//! Jute's primitives: big-endian integers, length-prefixed buffers and strings (length -1 is
//! null), vectors with a count. The reader never trusts a length: it checks it against the
//! bytes actually left before allocating anything, so a hostile frame costs at most its size.

use super::JuteError;

/// Reads jute primitives from one frame's payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], JuteError> {
        if self.remaining() < n {
            return Err(JuteError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i32(&mut self) -> Result<i32, JuteError> {
        let b = self.take(4, "int")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, JuteError> {
        let b = self.take(8, "long")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn bool(&mut self) -> Result<bool, JuteError> {
        Ok(self.take(1, "boolean")?[0] != 0)
    }

    /// A buffer; null (length -1) reads as empty, as ZooKeeper's server treats it.
    pub fn buffer(&mut self) -> Result<Vec<u8>, JuteError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize, "buffer")?.to_vec())
    }

    /// A string; null reads as empty. Invalid UTF-8 is an error, not a lossy guess.
    pub fn string(&mut self) -> Result<String, JuteError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(String::new());
        }
        let bytes = self.take(len as usize, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| JuteError::InvalidUtf8)
    }

    /// A vector; null reads as empty. Each element takes at least `min_elem` bytes, which
    /// bounds the count by what is left before anything is allocated.
    pub fn vec<T>(
        &mut self,
        min_elem: usize,
        mut read: impl FnMut(&mut Reader<'a>) -> Result<T, JuteError>,
    ) -> Result<Vec<T>, JuteError> {
        let count = self.i32()?;
        if count < 0 {
            return Ok(Vec::new());
        }
        let count = count as usize;
        if count.saturating_mul(min_elem.max(1)) > self.remaining() {
            return Err(JuteError::Truncated("vector"));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(read(self)?);
        }
        Ok(out)
    }

    pub fn strings(&mut self) -> Result<Vec<String>, JuteError> {
        self.vec(4, Reader::string)
    }
}

/// Writes jute primitives into a growing buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }

    pub fn buffer(&mut self, v: &[u8]) {
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v);
    }

    pub fn string(&mut self, v: &str) {
        self.buffer(v.as_bytes());
    }

    pub fn strings(&mut self, v: &[String]) {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s);
        }
    }

    /// A whole frame: the 4-byte length, then what `body` writes.
    pub fn frame(body: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer { buf: vec![0; 4] };
        body(&mut w);
        let len = (w.buf.len() - 4) as i32;
        w.buf[..4].copy_from_slice(&len.to_be_bytes());
        w.buf
    }
}
