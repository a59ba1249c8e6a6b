//! Streaming verification of ZIP-based documents (OOXML, OpenDocument).
//!
//! # Threat
//!
//! Java (`java -jar`), Office and Python's `zipfile` read a zip from its end:
//! the End of Central Directory record (EOCD) points to the central
//! directory, which lists every entry and the offset of its local header. A
//! check that walks local headers from the start and trusts each one's
//! compressed size can be made to jump over every later entry (a first entry
//! that claims a huge size), so a Java archive or a macro-enabled document
//! passes as a `.docx`.
//!
//! # How this reader decides
//!
//! It decides as the real readers do, from the central directory, and it
//! refuses every archive that a streaming reader and a central-directory
//! reader could read differently:
//!
//! * While the part streams, [`LocalScan`] records every local file header
//!   signature (`PK\x03\x04`) and its fixed fields and name (as a keyed hash),
//!   and captures the data of one named entry (`[Content_Types].xml`). The
//!   last bytes of the part are kept by the caller in a bounded tail.
//! * At the end of the part, [`CentralDirectory::parse`] finds the EOCD (and
//!   the ZIP64 end record through its locator), which must end the file
//!   exactly (its comment reaching the last byte, no later EOCD signature), and
//!   parses the central directory, which must lie inside the tail, start and
//!   end where the end records say, and hold exactly the announced count.
//! * [`verify_layout`] then requires the entries to tile the file: the first
//!   at offset 0, each local header where the central directory says, with
//!   the same name, method, flags, CRC and sizes, each entry's data followed
//!   directly by the next entry (or a data descriptor), the last one by the
//!   central directory. No byte before the central directory is outside an
//!   entry, so no hidden archive or prefix can exist.
//! * Encrypted entries, compression methods other than stored and deflate,
//!   multi-disk archives, duplicate names and names with `..` segments,
//!   backslashes or a leading `/` are refused.
//!
//! # Bounds
//!
//! The tail is at most the route's `upload.inspect_window`; a central
//! directory that does not fit is refused. At most [`MAX_LOCAL_HEADERS`]
//! local header signatures are recorded (about 48 bytes each), names of at
//! most [`MAX_NAME`] bytes are hashed, and the captured entry is at most
//! [`MAX_CAPTURE`] bytes compressed and [`MAX_INFLATED`] inflated.

use std::hash::{BuildHasher, Hasher};

use memchr::memmem;

use super::{u16_at, u32_at};

/// The most local header signatures recorded for one file.
pub const MAX_LOCAL_HEADERS: usize = 8192;
/// The longest entry name a local header may have to be matched.
pub const MAX_NAME: usize = 1024;
/// The most compressed bytes of the captured entry.
pub const MAX_CAPTURE: usize = 256 * 1024;
/// The most bytes the captured entry may inflate to.
pub const MAX_INFLATED: usize = 1024 * 1024;

const LOCAL_SIG: &[u8; 4] = b"PK\x03\x04";
const CENTRAL_SIG: &[u8; 4] = b"PK\x01\x02";
const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const ZIP64_EOCD_SIG: &[u8; 4] = b"PK\x06\x06";
const LOCAL_FIXED: usize = 30;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;

/// Flag bit 0: the entry is encrypted.
const FLAG_ENCRYPTED: u16 = 0x0001;
/// Flag bit 3: CRC and sizes follow the data in a data descriptor.
const FLAG_DESCRIPTOR: u16 = 0x0008;
/// Flag bit 6: strong encryption.
const FLAG_STRONG: u16 = 0x0040;

/// Why a zip was refused: the name of the failed check, for the log.
pub type Refusal = &'static str;

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// A local file header seen while the file streamed.
#[derive(Debug, Clone, Copy)]
struct LocalHeader {
    offset: u64,
    flags: u16,
    method: u16,
    crc: u32,
    csize: u32,
    usize: u32,
    name_len: u16,
    extra_len: u16,
    /// Keyed hash of the name; `None` when the name was longer than
    /// [`MAX_NAME`].
    name_hash: Option<u64>,
}

/// A local header whose bytes are still arriving.
struct Pending {
    offset: u64,
    fixed: [u8; LOCAL_FIXED],
    have: usize,
    name: Vec<u8>,
}

/// The captured data of one entry.
#[derive(Debug)]
struct Capture {
    /// Offset of the entry's local header.
    header: u64,
    data_start: u64,
    /// The compressed size when the local header gives it.
    want: Option<u64>,
    buf: Vec<u8>,
    too_big: bool,
}

/// Records local headers (and one entry's data) while a zip streams.
pub struct LocalScan {
    pos: u64,
    carry: [u8; 3],
    carry_len: usize,
    pending: Vec<Pending>,
    headers: Vec<LocalHeader>,
    capture_name: Option<&'static [u8]>,
    capture: Option<Capture>,
    keys: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for LocalScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalScan").field("pos", &self.pos).field("headers", &self.headers.len()).finish()
    }
}

impl LocalScan {
    /// A scanner that also captures the data of the entry named
    /// `capture_name` (ASCII case ignored), if any.
    pub fn new(capture_name: Option<&'static [u8]>) -> Self {
        Self {
            pos: 0,
            carry: [0; 3],
            carry_len: 0,
            pending: Vec::new(),
            headers: Vec::new(),
            capture_name,
            capture: None,
            keys: std::collections::hash_map::RandomState::new(),
        }
    }

    fn hash(&self, name: &[u8]) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write(name);
        h.finish()
    }

    /// The bytes seen so far.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.pos
    }

    /// Feeds the next bytes of the file.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Refusal> {
        if data.is_empty() {
            return Ok(());
        }
        let start = self.pos;
        // A signature that straddles the previous chunk and this one.
        if self.carry_len > 0 {
            let mut joined = [0u8; 6];
            joined[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            let extra = data.len().min(3);
            joined[self.carry_len..self.carry_len + extra].copy_from_slice(&data[..extra]);
            let joined = &joined[..self.carry_len + extra];
            for k in 1..=self.carry_len {
                let at = self.carry_len - k;
                if joined.get(at..at + 4) == Some(LOCAL_SIG) {
                    let mut fixed = [0u8; LOCAL_FIXED];
                    fixed[..k].copy_from_slice(&LOCAL_SIG[..k]);
                    self.start_pending(Pending { offset: start - k as u64, fixed, have: k, name: Vec::new() })?;
                }
            }
        }
        for i in memmem::find_iter(data, LOCAL_SIG) {
            self.start_pending(Pending {
                offset: start + i as u64,
                fixed: [0; LOCAL_FIXED],
                have: 0,
                name: Vec::new(),
            })?;
        }
        self.feed_pending(data, start)?;
        self.feed_capture(data, start);
        // Keep the last (up to) 3 bytes for a straddling signature.
        let keep = data.len().min(3);
        if keep == 3 {
            self.carry.copy_from_slice(&data[data.len() - 3..]);
            self.carry_len = 3;
        } else {
            let mut all = self.carry[..self.carry_len].to_vec();
            all.extend_from_slice(data);
            let from = all.len().saturating_sub(3);
            self.carry_len = all.len() - from;
            self.carry[..self.carry_len].copy_from_slice(&all[from..]);
        }
        self.pos = start + data.len() as u64;
        Ok(())
    }

    fn start_pending(&mut self, p: Pending) -> Result<(), Refusal> {
        if self.headers.len() + self.pending.len() >= MAX_LOCAL_HEADERS {
            return Err("zip: too many local header signatures");
        }
        self.pending.push(p);
        Ok(())
    }

    /// Gives every pending header its bytes from `data` (at offset `start`).
    fn feed_pending(&mut self, data: &[u8], start: u64) -> Result<(), Refusal> {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            // Absolute offset of the next byte this header needs.
            let next = p.offset + p.have as u64 + p.name.len() as u64;
            let Some(from) = next.checked_sub(start).and_then(|f| usize::try_from(f).ok()) else {
                i += 1;
                continue;
            };
            let mut avail = data.get(from..).unwrap_or(&[]);
            if p.have < LOCAL_FIXED {
                let take = (LOCAL_FIXED - p.have).min(avail.len());
                p.fixed[p.have..p.have + take].copy_from_slice(&avail[..take]);
                p.have += take;
                avail = &avail[take..];
            }
            if p.have < LOCAL_FIXED {
                i += 1;
                continue;
            }
            let name_len = usize::from(u16_at(&p.fixed, 26).unwrap_or(0));
            if name_len <= MAX_NAME {
                let take = (name_len - p.name.len()).min(avail.len());
                p.name.extend_from_slice(&avail[..take]);
                if p.name.len() < name_len {
                    i += 1;
                    continue;
                }
            }
            let p = self.pending.swap_remove(i);
            self.complete(p);
        }
        Ok(())
    }

    fn complete(&mut self, p: Pending) {
        let f = &p.fixed;
        let name_len = u16_at(f, 26).unwrap_or(0);
        let extra_len = u16_at(f, 28).unwrap_or(0);
        let oversize = usize::from(name_len) > MAX_NAME;
        let h = LocalHeader {
            offset: p.offset,
            flags: u16_at(f, 6).unwrap_or(0),
            method: u16_at(f, 8).unwrap_or(0),
            crc: u32_at(f, 14).unwrap_or(0),
            csize: u32_at(f, 18).unwrap_or(0),
            usize: u32_at(f, 22).unwrap_or(0),
            name_len,
            extra_len,
            name_hash: (!oversize).then(|| self.hash(&p.name)),
        };
        let wanted = self.capture_name.is_some_and(|n| !oversize && p.name.eq_ignore_ascii_case(n));
        if wanted && self.capture.is_none() {
            let data_start = p.offset + LOCAL_FIXED as u64 + u64::from(name_len) + u64::from(extra_len);
            let sized = h.flags & FLAG_DESCRIPTOR == 0 && h.csize != u32::MAX;
            let want = sized.then_some(u64::from(h.csize));
            let too_big = want.is_some_and(|w| w > MAX_CAPTURE as u64);
            self.capture = Some(Capture { header: p.offset, data_start, want, buf: Vec::new(), too_big });
        }
        // Keep headers sorted by offset (they complete almost in order).
        let at = self.headers.partition_point(|x| x.offset < h.offset);
        self.headers.insert(at, h);
    }

    fn feed_capture(&mut self, data: &[u8], start: u64) {
        let Some(c) = self.capture.as_mut() else { return };
        if c.too_big {
            return;
        }
        let limit = c.want.unwrap_or(MAX_CAPTURE as u64);
        let next = c.data_start + c.buf.len() as u64;
        if c.buf.len() as u64 >= limit {
            return;
        }
        let end = start + data.len() as u64;
        if next >= end || next < start {
            return;
        }
        let from = (next - start) as usize;
        let take = (limit - c.buf.len() as u64).min(end - next) as usize;
        c.buf.extend_from_slice(&data[from..from + take]);
    }

    fn header_at(&self, offset: u64) -> Option<&LocalHeader> {
        let i = self.headers.partition_point(|h| h.offset < offset);
        self.headers.get(i).filter(|h| h.offset == offset)
    }
}

/// One central directory entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry name as stored.
    pub name: Vec<u8>,
    flags: u16,
    /// Compression method (0 stored, 8 deflate).
    pub method: u16,
    crc: u32,
    /// Compressed size.
    pub csize: u64,
    /// Uncompressed size.
    pub usize: u64,
    /// Offset of the local header.
    pub offset: u64,
}

/// A parsed central directory.
#[derive(Debug)]
pub struct CentralDirectory {
    /// Entries in directory order.
    pub entries: Vec<Entry>,
    /// Where the central directory starts.
    pub offset: u64,
}

impl CentralDirectory {
    /// Parses the end records and the central directory from `tail`, the
    /// last bytes of a file, which start at offset `tail_start`.
    pub fn parse(tail: &[u8], tail_start: u64) -> Result<Self, Refusal> {
        let e = end_record_at(tail)?;
        let rd16 = |at: usize| u16_at(tail, e + at).ok_or("zip: truncated end record");
        let rd32 = |at: usize| u32_at(tail, e + at).ok_or("zip: truncated end record");
        let (disk, cd_disk, n_disk, n_total) = (rd16(4)?, rd16(6)?, rd16(8)?, rd16(10)?);
        let (cd_size, cd_offset) = (rd32(12)?, rd32(16)?);
        let has_locator = e >= ZIP64_LOCATOR_LEN && tail.get(e - ZIP64_LOCATOR_LEN..e - 16) == Some(ZIP64_LOCATOR_SIG);
        let needs_zip64 = n_total == u16::MAX || n_disk == u16::MAX || cd_size == u32::MAX || cd_offset == u32::MAX;
        // (count, cd size, cd offset, where the central directory must end)
        let (count, size, offset, cd_end) = if has_locator {
            zip64_extent(tail, tail_start, e, n_total, cd_size, cd_offset)?
        } else {
            if needs_zip64 {
                return Err("zip: zip64 markers without a zip64 end record");
            }
            if disk != 0 || cd_disk != 0 || n_disk != n_total {
                return Err("zip: multi-disk archive");
            }
            (u64::from(n_total), u64::from(cd_size), u64::from(cd_offset), tail_start + e as u64)
        };
        if offset.checked_add(size) != Some(cd_end) {
            return Err("zip: central directory does not end at the end record");
        }
        if offset < tail_start {
            return Err("zip: central directory larger than the tail bound");
        }
        let cd = usize::try_from(offset - tail_start).map_err(|_| "zip: bad offset")?;
        let cd_bytes = &tail[cd..usize::try_from(cd_end - tail_start).map_err(|_| "zip: bad offset")?];
        let entries = parse_entries(cd_bytes, count)?;
        Ok(Self { entries, offset })
    }

    /// The entry named `name` (ASCII case ignored).
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name.eq_ignore_ascii_case(name))
    }
}

/// Where the end of central directory record starts; it must end the file.
fn end_record_at(tail: &[u8]) -> Result<usize, Refusal> {
    if tail.len() < EOCD_LEN {
        return Err("zip: no end of central directory record");
    }
    let search_from = tail.len().saturating_sub(EOCD_LEN + usize::from(u16::MAX));
    let region = &tail[search_from..];
    let Some(rel) = memmem::rfind(region, EOCD_SIG) else {
        return Err("zip: no end of central directory record");
    };
    let e = search_from + rel;
    let comment_len = usize::from(u16_at(tail, e + 20).ok_or("zip: truncated end record")?);
    if e + EOCD_LEN + comment_len != tail.len() {
        // The last EOCD signature is not a record that ends the file:
        // data after the archive, or a record hidden in a comment.
        return Err("zip: end record does not end the file");
    }
    Ok(e)
}

/// The central directory's (count, size, offset, end) per the zip64 end record, checked against the end record.
fn zip64_extent(
    tail: &[u8],
    tail_start: u64,
    e: usize,
    n_total: u16,
    cd_size: u32,
    cd_offset: u32,
) -> Result<(u64, u64, u64, u64), Refusal> {
    let l = e - ZIP64_LOCATOR_LEN;
    let z_disk = u32_at(tail, l + 4).ok_or("zip: truncated zip64 locator")?;
    let z_off = u64_at(tail, l + 8).ok_or("zip: truncated zip64 locator")?;
    let disks = u32_at(tail, l + 16).ok_or("zip: truncated zip64 locator")?;
    if z_disk != 0 || disks > 1 {
        return Err("zip: multi-disk archive");
    }
    let z = z_off.checked_sub(tail_start).and_then(|z| usize::try_from(z).ok());
    let Some(z) = z.filter(|z| z.checked_add(56).is_some_and(|end| end <= l)) else {
        return Err("zip: zip64 end record outside the tail bound");
    };
    if tail.get(z..z + 4) != Some(ZIP64_EOCD_SIG) {
        return Err("zip: zip64 locator does not point to a zip64 end record");
    }
    let rec = u64_at(tail, z + 4).ok_or("zip: truncated zip64 end record")?;
    if (z as u64).checked_add(12).and_then(|v| v.checked_add(rec)) != Some(l as u64) {
        return Err("zip: zip64 end record does not end at its locator");
    }
    let rd = |at: usize| u64_at(tail, z + at).ok_or("zip: truncated zip64 end record");
    let z_this = u32_at(tail, z + 16).ok_or("zip: truncated zip64 end record")?;
    let z_cd = u32_at(tail, z + 20).ok_or("zip: truncated zip64 end record")?;
    let (nd, nt, s, o) = (rd(24)?, rd(32)?, rd(40)?, rd(48)?);
    if z_this != 0 || z_cd != 0 || nd != nt {
        return Err("zip: multi-disk archive");
    }
    // Where a 16-bit or 32-bit field is not a ZIP64 marker it must
    // agree with the zip64 record.
    if (n_total != u16::MAX && u64::from(n_total) != nt)
        || (cd_size != u32::MAX && u64::from(cd_size) != s)
        || (cd_offset != u32::MAX && u64::from(cd_offset) != o)
    {
        return Err("zip: end record and zip64 end record disagree");
    }
    Ok((nt, s, o, tail_start + z as u64))
}

/// Parses the `count` entries that must fill `cd_bytes` exactly.
fn parse_entries(cd_bytes: &[u8], count: u64) -> Result<Vec<Entry>, Refusal> {
    // Each entry takes at least 46 bytes: a count beyond that is a lie.
    if count > (cd_bytes.len() / 46) as u64 {
        return Err("zip: entry count larger than the central directory");
    }
    // Every entry needs a recorded local header: more than that many
    // cannot be verified.
    if count > MAX_LOCAL_HEADERS as u64 {
        return Err("zip: more entries than moat inspects");
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut p = 0usize;
    for _ in 0..count {
        let (entry, next) = parse_entry(cd_bytes, p)?;
        entries.push(entry);
        p = next;
    }
    if p != cd_bytes.len() {
        return Err("zip: central directory size disagrees with its entries");
    }
    Ok(entries)
}

fn parse_entry(cd: &[u8], p: usize) -> Result<(Entry, usize), Refusal> {
    const T: &str = "zip: truncated central directory entry";
    if cd.get(p..p + 4) != Some(CENTRAL_SIG) {
        return Err("zip: bad central directory entry signature");
    }
    let flags = u16_at(cd, p + 8).ok_or(T)?;
    let method = u16_at(cd, p + 10).ok_or(T)?;
    let crc = u32_at(cd, p + 16).ok_or(T)?;
    let mut csize = u64::from(u32_at(cd, p + 20).ok_or(T)?);
    let mut usize_ = u64::from(u32_at(cd, p + 24).ok_or(T)?);
    let nlen = usize::from(u16_at(cd, p + 28).ok_or(T)?);
    let xlen = usize::from(u16_at(cd, p + 30).ok_or(T)?);
    let clen = usize::from(u16_at(cd, p + 32).ok_or(T)?);
    let disk = u16_at(cd, p + 34).ok_or(T)?;
    let mut offset = u64::from(u32_at(cd, p + 42).ok_or(T)?);
    let name_at = p + 46;
    let name = cd.get(name_at..name_at + nlen).ok_or(T)?.to_vec();
    let extra = cd.get(name_at + nlen..name_at + nlen + xlen).ok_or(T)?;
    let end = name_at + nlen + xlen + clen;
    if end > cd.len() {
        return Err(T);
    }
    // The ZIP64 extra field holds, in order, the fields marked 0xFFFFFFFF.
    let mut x = 0usize;
    while x + 4 <= extra.len() {
        let id = u16_at(extra, x).ok_or(T)?;
        let len = usize::from(u16_at(extra, x + 2).ok_or(T)?);
        let body = extra.get(x + 4..x + 4 + len).ok_or("zip: bad extra field")?;
        if id == 0x0001 {
            let mut q = 0usize;
            let mut next = |v: &mut u64| -> Result<(), Refusal> {
                *v = u64_at(body, q).ok_or("zip: short zip64 extra field")?;
                q += 8;
                Ok(())
            };
            if usize_ == u64::from(u32::MAX) {
                next(&mut usize_)?;
            }
            if csize == u64::from(u32::MAX) {
                next(&mut csize)?;
            }
            if offset == u64::from(u32::MAX) {
                next(&mut offset)?;
            }
        }
        x += 4 + len;
    }
    if disk != 0 && disk != u16::MAX {
        return Err("zip: multi-disk archive");
    }
    Ok((Entry { name, flags, method, crc, csize, usize: usize_, offset }, end))
}

/// Checks what every document type wants of its entries: no encryption,
/// stored or deflate only, unique and harmless names, no Java archive.
pub fn check_entries(cd: &CentralDirectory) -> Result<(), Refusal> {
    let mut names: Vec<Vec<u8>> = Vec::with_capacity(cd.entries.len());
    for e in &cd.entries {
        if e.flags & (FLAG_ENCRYPTED | FLAG_STRONG) != 0 || e.method == 99 {
            return Err("zip: encrypted entry");
        }
        if e.method != 0 && e.method != 8 {
            return Err("zip: compression method other than stored or deflate");
        }
        let n = &e.name;
        if n.is_empty() || n.starts_with(b"/") || n.contains(&b'\\') || n.contains(&0) {
            return Err("zip: bad entry name");
        }
        if n.split(|&b| b == b'/').any(|seg| seg == b"..") {
            return Err("zip: entry name with a .. segment");
        }
        if n.eq_ignore_ascii_case(b"META-INF/MANIFEST.MF") || ends_with_ci(n, b".class") {
            return Err("zip: java archive entry");
        }
        names.push(n.to_ascii_lowercase());
    }
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("zip: duplicate entry name");
    }
    Ok(())
}

/// Requires the entries to tile the file from offset 0 to the central
/// directory, each local header (recorded by `scan`) agreeing with its
/// central directory entry.
pub fn verify_layout(cd: &CentralDirectory, scan: &LocalScan) -> Result<(), Refusal> {
    let mut order: Vec<&Entry> = cd.entries.iter().collect();
    order.sort_by_key(|e| e.offset);
    let mut expect = 0u64;
    let mut descriptor = false;
    let gap_ok = |got: u64, expect: u64, descriptor: bool| {
        if descriptor {
            got.checked_sub(expect).is_some_and(|g| matches!(g, 12 | 16 | 20 | 24))
        } else {
            got == expect
        }
    };
    for e in order {
        if !gap_ok(e.offset, expect, descriptor) {
            return Err("zip: entries do not follow one another (gap, overlap or prefix)");
        }
        let Some(l) = scan.header_at(e.offset) else {
            return Err("zip: no local header where the central directory points");
        };
        if usize::from(l.name_len) != e.name.len() || l.name_hash != Some(scan.hash(&e.name)) {
            return Err("zip: local header name disagrees with the central directory");
        }
        if l.method != e.method || (l.flags ^ e.flags) & (FLAG_ENCRYPTED | FLAG_DESCRIPTOR) != 0 {
            return Err("zip: local header method or flags disagree with the central directory");
        }
        if l.flags & (FLAG_ENCRYPTED | FLAG_STRONG) != 0 {
            return Err("zip: encrypted entry");
        }
        descriptor = l.flags & FLAG_DESCRIPTOR != 0;
        // Writers that stream (LibreOffice, Java, .NET) set flag bit 3 and
        // leave CRC and sizes 0 in the local header (the real values follow
        // the data); some fill in what they know. An entry of 4 GiB or more
        // has the ZIP64 marker 0xFFFFFFFF there. Any other value must be the
        // central directory's (the local ZIP64 extra field is not read, so a
        // marker on a smaller entry is refused).
        let size_agrees = |local: u32, central: u64| {
            u64::from(local) == central
                || (descriptor && local == 0)
                || (local == u32::MAX && central >= u64::from(u32::MAX))
        };
        let crc_agrees = l.crc == e.crc || (descriptor && l.crc == 0);
        if !(crc_agrees && size_agrees(l.csize, e.csize) && size_agrees(l.usize, e.usize)) {
            return Err("zip: local header sizes disagree with the central directory");
        }
        expect = e
            .offset
            .checked_add(LOCAL_FIXED as u64 + u64::from(l.name_len) + u64::from(l.extra_len))
            .and_then(|v| v.checked_add(e.csize))
            .ok_or("zip: entry size overflows")?;
    }
    if !gap_ok(cd.offset, expect, descriptor) {
        return Err("zip: central directory does not follow the last entry");
    }
    Ok(())
}

/// The data of the captured entry, inflated, when the central directory
/// confirms it is `entry`.
pub fn captured(scan: &LocalScan, entry: &Entry) -> Result<Vec<u8>, Refusal> {
    let Some(c) = scan.capture.as_ref() else {
        return Err("zip: entry data not seen while streaming");
    };
    if c.header != entry.offset {
        return Err("zip: entry data seen at another offset than the central directory says");
    }
    if c.too_big || entry.csize > MAX_CAPTURE as u64 || entry.usize > MAX_INFLATED as u64 {
        return Err("zip: entry too large to inspect");
    }
    let n = entry.csize as usize;
    let Some(raw) = c.buf.get(..n) else {
        return Err("zip: entry data not seen while streaming");
    };
    let data = match entry.method {
        0 => raw.to_vec(),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(raw, MAX_INFLATED)
            .map_err(|_| "zip: entry does not inflate")?,
        _ => return Err("zip: compression method other than stored or deflate"),
    };
    if data.len() as u64 != entry.usize {
        return Err("zip: entry size disagrees with its data");
    }
    Ok(data)
}

/// Whether `s` ends with `suffix`, ASCII case ignored.
pub fn ends_with_ci(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Whether `s` starts with `prefix`, ASCII case ignored.
pub fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `(PartName or Extension, ContentType)` of every `Override` and `Default`
/// element of an OPC `[Content_Types].xml`; the part name without its
/// leading `/`.
pub fn content_types(xml: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = memchr::memchr(b'<', rest) {
        rest = &rest[i + 1..];
        let end = memchr::memchr(b'>', rest).unwrap_or(rest.len());
        let tag = &rest[..end];
        let (is_override, attr) = if starts_with_ci(tag, b"Override") {
            (true, &b"PartName"[..])
        } else if starts_with_ci(tag, b"Default") {
            (false, &b"Extension"[..])
        } else {
            rest = &rest[end..];
            continue;
        };
        if let (Some(key), Some(ct)) = (attribute(tag, attr), attribute(tag, b"ContentType")) {
            let key = key.strip_prefix(b"/").unwrap_or(key);
            out.push((key.to_vec(), ct.to_ascii_lowercase(), is_override));
        }
        rest = &rest[end..];
    }
    out
}

/// The value of attribute `name` in the inside of a tag.
fn attribute<'a>(tag: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut at = 0;
    while let Some(i) = memmem::find(&tag[at..], name) {
        let start = at + i;
        let before_ok = start > 0 && tag[start - 1].is_ascii_whitespace();
        let mut j = start + name.len();
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if before_ok && tag.get(j) == Some(&b'=') {
            j += 1;
            while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
                j += 1;
            }
            let quote = *tag.get(j)?;
            if quote == b'"' || quote == b'\'' {
                let v = &tag[j + 1..];
                let close = memchr::memchr(quote, v)?;
                return Some(&v[..close]);
            }
            return None;
        }
        at = start + name.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored zip written by hand: (name, data) entries, optional comment.
    fn zip(entries: &[(&str, &[u8])], comment: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in entries {
            let off = out.len() as u32;
            let crc = 0x1234_5678u32;
            out.extend_from_slice(LOCAL_SIG);
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            cd.extend_from_slice(CENTRAL_SIG);
            cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 12]);
            cd.extend_from_slice(&off.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(EOCD_SIG);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&(comment.len() as u16).to_le_bytes());
        out.extend_from_slice(comment);
        out
    }

    fn verdict(file: &[u8], chunk: usize, tail: usize) -> Result<CentralDirectory, Refusal> {
        let mut scan = LocalScan::new(Some(b"a.xml"));
        for c in file.chunks(chunk.max(1)) {
            scan.push(c)?;
        }
        let from = file.len().saturating_sub(tail);
        let cd = CentralDirectory::parse(&file[from..], from as u64)?;
        check_entries(&cd)?;
        verify_layout(&cd, &scan)?;
        Ok(cd)
    }

    #[test]
    fn reads_a_plain_archive_in_any_chunking() {
        let z = zip(&[("a.xml", b"<a/>"), ("b/c.txt", b"hello")], b"");
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            let cd = verdict(&z, chunk, 1 << 20).expect("valid");
            assert_eq!(cd.entries.len(), 2);
        }
        let mut scan = LocalScan::new(Some(b"A.XML"));
        scan.push(&z).expect("scan");
        let cd = CentralDirectory::parse(&z, 0).expect("cd");
        assert_eq!(captured(&scan, &cd.entries[0]).expect("captured"), b"<a/>");
        // With a comment that reaches the end.
        assert!(verdict(&zip(&[("a.xml", b"x")], b"a comment"), 3, 1 << 20).is_ok());
    }

    #[test]
    fn truncated_and_malformed_input_is_refused_without_panic() {
        let z = zip(&[("a.xml", b"<a/>"), ("b.txt", b"hello")], b"");
        // Every truncation, every chunking of a few.
        for cut in 0..z.len() {
            assert!(verdict(&z[..cut], 3, 1 << 20).is_err(), "cut at {cut}");
        }
        // Every single-byte corruption: never a panic; the record and
        // directory bytes matter.
        for i in 0..z.len() {
            for v in [0u8, 0xff, 0x50] {
                let mut bad = z.clone();
                bad[i] = v;
                let _ = verdict(&bad, 5, 1 << 20);
            }
        }
        // Appended bytes after the end record.
        let mut appended = z.clone();
        appended.extend_from_slice(b"MZ trailing");
        assert!(verdict(&appended, 7, 1 << 20).is_err());
        // A second end record hidden in the comment.
        let mut fake = EOCD_SIG.to_vec();
        fake.extend_from_slice(&[0; 18]);
        assert!(verdict(&zip(&[("a.xml", b"x")], &fake), 7, 1 << 20).is_err());
        // Central directory larger than the tail bound.
        assert_eq!(verdict(&z, 7, 40).err(), Some("zip: central directory larger than the tail bound"));
        // Random garbage.
        let mut seed = 0x1234_5678_9abc_def1u64;
        for len in [0usize, 1, 21, 22, 23, 100, 5000] {
            let mut g: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            assert!(verdict(&g, 3, 1 << 20).is_err());
            g.extend_from_slice(EOCD_SIG);
            g.extend_from_slice(&[0xff; 18]);
            assert!(verdict(&g, 3, 1 << 20).is_err());
        }
    }

    /// How a hand-built archive writes its local headers and end records.
    #[derive(Clone, Copy)]
    struct Shape {
        /// Flag bit 3 and a data descriptor after each entry's data.
        descriptor: bool,
        /// The descriptor starts with its optional signature.
        descriptor_sig: bool,
        /// The local header keeps the CRC / the sizes (else zeros).
        local_crc: bool,
        local_sizes: bool,
        /// ZIP64 end record and locator, with markers in the end record.
        zip64: bool,
    }

    const PLAIN: Shape =
        Shape { descriptor: false, descriptor_sig: false, local_crc: true, local_sizes: true, zip64: false };

    fn build(entries: &[(&str, &[u8])], shape: Shape) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        let flags: u16 = if shape.descriptor { FLAG_DESCRIPTOR } else { 0 };
        for (i, (name, data)) in entries.iter().enumerate() {
            let off = out.len() as u32;
            let crc = 0x0bad_f00du32.wrapping_add(i as u32);
            let size = data.len() as u32;
            out.extend_from_slice(LOCAL_SIG);
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&[0; 6]);
            out.extend_from_slice(&(if shape.local_crc { crc } else { 0 }).to_le_bytes());
            let local_size = if shape.local_sizes { size } else { 0 };
            out.extend_from_slice(&local_size.to_le_bytes());
            out.extend_from_slice(&local_size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            if shape.descriptor {
                if shape.descriptor_sig {
                    out.extend_from_slice(b"PK\x07\x08");
                }
                out.extend_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
            }
            cd.extend_from_slice(CENTRAL_SIG);
            cd.extend_from_slice(&[20, 0, 20, 0]);
            cd.extend_from_slice(&flags.to_le_bytes());
            cd.extend_from_slice(&[0; 6]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&size.to_le_bytes());
            cd.extend_from_slice(&size.to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 12]);
            cd.extend_from_slice(&off.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u64;
        out.extend_from_slice(&cd);
        let n = entries.len() as u64;
        if shape.zip64 {
            let rec = out.len() as u64;
            out.extend_from_slice(ZIP64_EOCD_SIG);
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for v in [n, n, cd.len() as u64, cd_off] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(ZIP64_LOCATOR_SIG);
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&rec.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(EOCD_SIG);
        out.extend_from_slice(&[0; 4]);
        let (count, size, offset) =
            if shape.zip64 { (u16::MAX, u32::MAX, u32::MAX) } else { (n as u16, cd.len() as u32, cd_off as u32) };
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    const ENTRIES: [(&str, &[u8]); 3] = [("a.xml", b"<a/>"), ("b/c.txt", b"hello"), ("d.bin", b"\x00\x01\x02")];

    #[test]
    fn data_descriptors_as_real_writers_write_them() {
        for descriptor_sig in [true, false] {
            for (local_crc, local_sizes) in [(false, false), (true, false), (true, true)] {
                let shape = Shape { descriptor: true, descriptor_sig, local_crc, local_sizes, zip64: false };
                let z = build(&ENTRIES, shape);
                for chunk in [1, 3, 29, 4096] {
                    let cd = verdict(&z, chunk, 1 << 20).expect("descriptor archive");
                    assert_eq!(cd.entries.len(), 3);
                }
            }
        }
        // Without flag bit 3, zeros in the local header are a disagreement.
        let zeros = Shape { local_crc: false, local_sizes: false, ..PLAIN };
        assert_eq!(
            verdict(&build(&ENTRIES, zeros), 7, 1 << 20).err(),
            Some("zip: local header sizes disagree with the central directory")
        );
        // With it, a wrong non-zero size still is.
        let mut z = build(&ENTRIES, Shape { descriptor: true, descriptor_sig: true, ..PLAIN });
        z[18] ^= 1;
        assert_eq!(verdict(&z, 7, 1 << 20).err(), Some("zip: local header sizes disagree with the central directory"));
        // The local header's flag bit 3 must be the central directory's.
        let mut z = build(&ENTRIES, PLAIN);
        z[6] |= 0x08;
        assert!(verdict(&z, 7, 1 << 20).is_err());
        // A local header name that differs.
        let mut z = build(&ENTRIES, PLAIN);
        z[30] = b'x';
        assert_eq!(verdict(&z, 7, 1 << 20).err(), Some("zip: local header name disagrees with the central directory"));
    }

    #[test]
    fn zip64_end_records() {
        for descriptor in [false, true] {
            let z = build(&ENTRIES, Shape { zip64: true, descriptor, descriptor_sig: true, ..PLAIN });
            for chunk in [1, 5, 64, 4096] {
                assert_eq!(verdict(&z, chunk, 1 << 20).expect("zip64 archive").entries.len(), 3);
            }
            // Every truncation and a few corruptions: refused, no panic.
            for cut in 0..z.len() {
                assert!(verdict(&z[..cut], 13, 1 << 20).is_err(), "cut at {cut}");
            }
            for i in z.len() - 98..z.len() {
                for v in [0u8, 0xff, 0x01] {
                    let mut bad = z.clone();
                    bad[i] = v;
                    let _ = verdict(&bad, 5, 1 << 20);
                }
            }
        }
        let z = build(&ENTRIES, Shape { zip64: true, ..PLAIN });
        let rec = z.len() - EOCD_LEN - ZIP64_LOCATOR_LEN - 56;
        // A zip64 record that announces another entry count.
        let mut bad = z.clone();
        bad[rec + 32] = 4;
        assert!(verdict(&bad, 9, 1 << 20).is_err());
        // A locator pointing elsewhere.
        let mut bad = z.clone();
        let l = z.len() - EOCD_LEN - ZIP64_LOCATOR_LEN;
        bad[l + 8] ^= 0x10;
        assert!(verdict(&bad, 9, 1 << 20).is_err());
        // Markers without a zip64 record.
        let mut bad = build(&ENTRIES, PLAIN);
        let e = bad.len() - EOCD_LEN;
        bad[e + 16..e + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(verdict(&bad, 9, 1 << 20).err(), Some("zip: zip64 markers without a zip64 end record"));
        // Multi-disk.
        let mut bad = z.clone();
        bad[l + 16] = 2;
        assert_eq!(verdict(&bad, 9, 1 << 20).err(), Some("zip: multi-disk archive"));
    }

    #[test]
    fn inflated_first_header_is_a_differential() {
        let mut z = zip(&[("a.xml", b"<a/>"), ("Main.class", b"\xca\xfe\xba\xbe")], b"");
        // The first local header claims a huge compressed size.
        z[18..22].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert!(verdict(&z, 11, 1 << 20).is_err());
        let z = zip(&[("a.xml", b"<a/>"), ("Main.class", b"\xca\xfe\xba\xbe")], b"");
        assert_eq!(verdict(&z, 11, 1 << 20).err(), Some("zip: java archive entry"));
    }

    #[test]
    fn prefix_before_the_first_entry_is_refused() {
        let z = zip(&[("a.xml", b"<a/>")], b"");
        let mut prefixed = b"MZ\x90\x00".to_vec();
        prefixed.extend_from_slice(&z);
        assert!(verdict(&prefixed, 5, 1 << 20).is_err());
    }

    #[test]
    fn content_types_are_read() {
        let xml = br#"<?xml version="1.0"?><Types xmlns="x"><Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/><Override PartName="/word/document.xml" ContentType='application/vnd.ms-word.document.macroEnabled.main+xml'/></Types>"#;
        let ct = content_types(xml);
        assert_eq!(ct.len(), 2);
        assert_eq!(ct[0], (b"bin".to_vec(), b"application/vnd.ms-office.vbaproject".to_vec(), false));
        assert_eq!(ct[1].0, b"word/document.xml");
        assert!(ct[1].2);
        assert!(content_types(b"<Override PartName=\"/x").is_empty());
    }
}
