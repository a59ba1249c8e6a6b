//! Streaming verification of OLE2 compound files (doc, xls, ppt).
//!
//! # Threat
//!
//! Word, Excel and PowerPoint 97-2003 files, Windows Installer packages
//! (`.msi`), Outlook messages and many other formats share one container,
//! the compound file (MS-CFB). Its magic says nothing about what it holds:
//! an installer renamed `.doc` starts exactly like a Word document. What a
//! compound file is lies in its directory: the root entry's class id and the
//! names of its streams. Writers put the directory anywhere; LibreOffice and
//! Office put it near the end of the file, so a check of the first 64 KiB
//! cannot see it.
//!
//! # How this reader decides
//!
//! [`Ole2Scan`] reads the header, then, while the file streams, keeps only
//! the sectors it needs: the FAT sectors (their positions come from the
//! header's DIFAT array and from DIFAT sectors), the first directory sector
//! and every sector shaped like a directory sector. At the end of the part
//! [`Ole2Scan::finish`] follows the directory chain through the FAT and
//! requires: a root entry whose class id is one the type allows (installer,
//! patch and transform class ids are refused by name), the type's main
//! stream (`WordDocument`; `Workbook` or `Book`; `PowerPoint Document`), and
//! no macro storage (`Macros`, `_VBA_PROJECT_CUR`) unless macros are allowed.
//! When a sector the decision needs lies past the route's inspection window
//! (`upload.inspect_window`) the file is refused: moat does not pass what it
//! could not see.
//!
//! # Bounds
//!
//! Sectors past the window are not looked at. Kept FAT sectors are at most
//! 1/64 of the window (a real FAT is 1/128 of the file for 512-byte sectors),
//! kept directory sectors at most [`MAX_DIRECTORY_BYTES`], plus one sector
//! being assembled and the 512-byte header.

use std::collections::BTreeMap;

use super::{u16_at, u32_at};

/// The most bytes of directory(-shaped) sectors kept for one file.
pub const MAX_DIRECTORY_BYTES: usize = 1024 * 1024;

const MAGIC: &[u8; 8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";
const HEADER_LEN: usize = 512;
const END_OF_CHAIN: u32 = 0xffff_fffe;
const MAX_REG_SECTOR: u32 = 0xffff_fffa;
const ENTRY_LEN: usize = 128;

/// Class ids (on-disk byte order) of Windows Installer packages, patches and
/// transforms.
const MSI_CLSIDS: [[u8; 16]; 3] = [
    *b"\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
    *b"\x86\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
    *b"\x82\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
];

/// What one OLE2 document type must contain.
#[derive(Debug)]
pub struct Ole2Kind {
    /// Streams of which one must exist (names compared ignoring ASCII case).
    pub streams: &'static [&'static str],
    /// Root class ids accepted (on-disk byte order); all-zero is always
    /// accepted.
    pub clsids: &'static [[u8; 16]],
    /// Storages that hold macros.
    pub macro_storages: &'static [&'static str],
}

/// Word 97-2003 and Word 6/95 documents.
pub static WORD: Ole2Kind = Ole2Kind {
    streams: &["WordDocument"],
    clsids: &[
        *b"\x06\x09\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
        *b"\x00\x09\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
    ],
    macro_storages: &["Macros"],
};

/// Excel 97-2003 and Excel 5/95 workbooks.
pub static EXCEL: Ole2Kind = Ole2Kind {
    streams: &["Workbook", "Book"],
    clsids: &[
        *b"\x20\x08\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
        *b"\x10\x08\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
    ],
    macro_storages: &["_VBA_PROJECT_CUR"],
};

/// PowerPoint 97-2003 presentations.
pub static POWERPOINT: Ole2Kind = Ole2Kind {
    streams: &["PowerPoint Document"],
    clsids: &[
        *b"\x10\x8d\x81\x64\x9b\x4f\xcf\x11\x86\xea\x00\xaa\x00\xb9\x29\xe8",
        *b"\x70\xae\x7b\xea\x3b\xfb\xcd\x11\xa9\x03\x00\xaa\x00\x51\x0e\xa3",
    ],
    macro_storages: &["_VBA_PROJECT_CUR"],
};

/// Why a compound file was refused: the name of the failed check.
pub type Refusal = &'static str;

#[derive(Debug, Clone, Copy)]
struct Header {
    /// Sector size in bytes (512 or 4096).
    ssz: usize,
    num_fat: u32,
    first_dir: u32,
    first_difat: u32,
    num_difat: u32,
}

fn parse_header(h: &[u8]) -> Result<Header, Refusal> {
    if h.len() < HEADER_LEN || &h[..8] != MAGIC {
        return Err("ole2: not a compound file");
    }
    let major = u16_at(h, 0x1a).unwrap_or(0);
    let shift = u16_at(h, 0x1e).unwrap_or(0);
    if &h[0x1c..0x1e] != b"\xfe\xff" || !matches!((major, shift), (3, 9) | (4, 12)) {
        return Err("ole2: bad header");
    }
    let rd = |at| u32_at(h, at).unwrap_or(u32::MAX);
    Ok(Header {
        ssz: 1usize << shift,
        num_fat: rd(0x2c),
        first_dir: rd(0x30),
        first_difat: rd(0x44),
        num_difat: rd(0x48),
    })
}

/// Keeps what the directory check needs while a compound file streams.
#[derive(Debug)]
pub struct Ole2Scan {
    window: u64,
    pos: u64,
    head: Vec<u8>,
    header: Option<Header>,
    /// The sector being assembled.
    cur: Vec<u8>,
    /// FAT sector index → sector id, as far as known.
    fat_ids: BTreeMap<u32, u32>,
    /// The same, sector id → FAT sector index.
    fat_at: BTreeMap<u32, u32>,
    /// Kept FAT sectors by FAT index.
    fat: BTreeMap<u32, Vec<u8>>,
    fat_bytes: usize,
    /// The next DIFAT sector expected: (sector id, its index in the chain).
    next_difat: Option<(u32, u32)>,
    /// Kept directory(-shaped) sectors by sector id.
    dir: BTreeMap<u32, Vec<u8>>,
    dir_bytes: usize,
}

impl Ole2Scan {
    /// A scanner that looks at the first `window` bytes of the file.
    pub fn new(window: u64) -> Self {
        Self {
            window,
            pos: 0,
            head: Vec::new(),
            header: None,
            cur: Vec::new(),
            fat_ids: BTreeMap::new(),
            fat_at: BTreeMap::new(),
            fat: BTreeMap::new(),
            fat_bytes: 0,
            next_difat: None,
            dir: BTreeMap::new(),
            dir_bytes: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), Refusal> {
        while !data.is_empty() {
            let Some(h) = self.header else {
                let take = (HEADER_LEN - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..take]);
                self.pos += take as u64;
                data = &data[take..];
                if self.head.len() == HEADER_LEN {
                    self.start(parse_header(&self.head)?);
                }
                continue;
            };
            if self.pos >= self.window {
                self.pos += data.len() as u64;
                return Ok(());
            }
            // The header occupies sector "-1": the first sector starts at ssz.
            if self.pos < h.ssz as u64 {
                let skip = ((h.ssz as u64 - self.pos) as usize).min(data.len());
                self.pos += skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (h.ssz - self.cur.len()).min(data.len());
            self.cur.extend_from_slice(&data[..take]);
            self.pos += take as u64;
            data = &data[take..];
            if self.cur.len() == h.ssz {
                let id = u32::try_from(self.pos / h.ssz as u64 - 2).unwrap_or(u32::MAX);
                let sector = std::mem::take(&mut self.cur);
                self.sector(h, id, sector);
            }
        }
        Ok(())
    }

    fn start(&mut self, h: Header) {
        for k in 0..h.num_fat.min(109) {
            if let Some(id) = u32_at(&self.head, 0x4c + 4 * k as usize).filter(|&id| id <= MAX_REG_SECTOR) {
                self.fat_ids.insert(k, id);
                self.fat_at.insert(id, k);
            }
        }
        if h.num_difat > 0 && h.first_difat <= MAX_REG_SECTOR {
            self.next_difat = Some((h.first_difat, 0));
        }
        self.header = Some(h);
    }

    fn sector(&mut self, h: Header, id: u32, sector: Vec<u8>) {
        let per = (h.ssz / 4) as u32;
        if self.next_difat.is_some_and(|(d, _)| d == id) {
            if let Some((_, j)) = self.next_difat.take() {
                for i in 0..per - 1 {
                    let k = 109 + j * (per - 1) + i;
                    if k >= h.num_fat {
                        break;
                    }
                    if let Some(fid) = u32_at(&sector, 4 * i as usize).filter(|&f| f <= MAX_REG_SECTOR) {
                        self.fat_ids.insert(k, fid);
                        self.fat_at.insert(fid, k);
                    }
                }
                let next = u32_at(&sector, 4 * (per - 1) as usize).unwrap_or(END_OF_CHAIN);
                if j + 1 < h.num_difat && next <= MAX_REG_SECTOR {
                    self.next_difat = Some((next, j + 1));
                }
            }
        }
        if let Some(&k) = self.fat_at.get(&id) {
            let cap = usize::try_from(self.window / 64).unwrap_or(usize::MAX).max(64 * 1024);
            if self.fat_bytes + h.ssz <= cap {
                self.fat_bytes += h.ssz;
                self.fat.insert(k, sector.clone());
            }
        }
        if (id == h.first_dir || looks_like_directory(&sector)) && self.dir_bytes + h.ssz <= MAX_DIRECTORY_BYTES {
            self.dir_bytes += h.ssz;
            self.dir.insert(id, sector);
        }
    }

    /// Why sector `id` (needed) is not available.
    fn missing(&self, h: Header, id: u32) -> Refusal {
        let end = (u64::from(id) + 2) * h.ssz as u64;
        if end > self.pos {
            "ole2: truncated compound file"
        } else if end > self.window {
            "ole2: directory beyond the inspection window"
        } else {
            "ole2: directory sector not found"
        }
    }

    fn next_in_chain(&self, h: Header, s: u32) -> Result<u32, Refusal> {
        let per = (h.ssz / 4) as u32;
        let k = s / per;
        if k >= h.num_fat {
            return Err("ole2: sector outside the FAT");
        }
        let Some(fat) = self.fat.get(&k) else {
            return Err(match self.fat_ids.get(&k) {
                Some(&id) => self.missing(h, id),
                None => "ole2: FAT sector not found",
            });
        };
        u32_at(fat, 4 * (s % per) as usize).ok_or("ole2: bad FAT")
    }

    /// Decides, once the whole file has been fed.
    pub fn finish(&self, kind: &Ole2Kind, macros_allowed: bool) -> Result<(), Refusal> {
        let Some(h) = self.header else {
            return Err("ole2: truncated header");
        };
        let mut s = h.first_dir;
        let mut first = true;
        let mut has_stream = false;
        let mut steps = 0usize;
        while s != END_OF_CHAIN {
            steps += 1;
            if s > MAX_REG_SECTOR || steps > self.dir.len() + 1 {
                return Err("ole2: bad directory chain");
            }
            let Some(sector) = self.dir.get(&s) else {
                return Err(self.missing(h, s));
            };
            for e in sector.chunks_exact(ENTRY_LEN) {
                let ty = e[0x42];
                if first {
                    first = false;
                    if ty != 5 {
                        return Err("ole2: no root entry");
                    }
                    let clsid = &e[0x50..0x60];
                    if MSI_CLSIDS.iter().any(|m| m == clsid) {
                        return Err("ole2: windows installer package");
                    }
                    if clsid.iter().any(|&b| b != 0) && !kind.clsids.iter().any(|c| c == clsid) {
                        return Err("ole2: root class id of another type");
                    }
                    continue;
                }
                if ty == 0 {
                    continue;
                }
                let Some(name) = entry_name(e) else {
                    return Err("ole2: bad directory entry");
                };
                let is = |n: &str| name.eq_ignore_ascii_case(n);
                if ty == 2 && kind.streams.iter().any(|n| is(n)) {
                    has_stream = true;
                }
                if ty == 1 && !macros_allowed && kind.macro_storages.iter().any(|n| is(n)) {
                    return Err("ole2: macro storage");
                }
            }
            s = self.next_in_chain(h, s)?;
        }
        if first {
            return Err("ole2: empty directory");
        }
        if !has_stream {
            return Err("ole2: main stream of the type missing");
        }
        Ok(())
    }
}

/// The name of a directory entry, if well-formed.
fn entry_name(e: &[u8]) -> Option<String> {
    let len = usize::from(u16_at(e, 0x40)?);
    if !(2..=64).contains(&len) || len % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = e[..len - 2].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    if e[len - 2..len] != [0, 0] {
        return None;
    }
    String::from_utf16(&units).ok()
}

/// Whether a sector is shaped like a directory sector: every used entry has
/// a known type, a red/black colour and a terminated name.
fn looks_like_directory(sector: &[u8]) -> bool {
    let mut used = 0;
    for e in sector.chunks_exact(ENTRY_LEN) {
        match e[0x42] {
            0 => {}
            1 | 2 | 5 if e[0x43] <= 1 && entry_name(e).is_some() => used += 1,
            _ => return false,
        }
    }
    used > 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn entry(name: &str, ty: u8, clsid: &[u8; 16]) -> Vec<u8> {
        let mut e = vec![0u8; ENTRY_LEN];
        let units: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        e[..units.len()].copy_from_slice(&units);
        e[0x40..0x42].copy_from_slice(&((units.len() + 2) as u16).to_le_bytes());
        e[0x42] = ty;
        e[0x43] = 1;
        e[0x44..0x50].copy_from_slice(&[0xff; 12]);
        e[0x50..0x60].copy_from_slice(clsid);
        e
    }

    /// A v3 compound file of `sectors` sectors: sector 0 the FAT, the
    /// directory at sector `dir` (two entries: root and `stream`), padding
    /// elsewhere.
    pub(crate) fn compound(clsid: &[u8; 16], stream: &str, dir: u32, sectors: u32) -> Vec<u8> {
        compound_of(clsid, &[stream], dir, sectors)
    }

    /// The same with up to three streams.
    pub(crate) fn compound_of(clsid: &[u8; 16], streams: &[&str], dir: u32, sectors: u32) -> Vec<u8> {
        let mut v = vec![0u8; 512 * (sectors as usize + 1)];
        v[..8].copy_from_slice(MAGIC);
        v[0x18] = 0x3e;
        v[0x1a] = 3;
        v[0x1c] = 0xfe;
        v[0x1d] = 0xff;
        v[0x1e] = 9;
        v[0x20] = 6;
        v[0x2c..0x30].copy_from_slice(&1u32.to_le_bytes());
        v[0x30..0x34].copy_from_slice(&dir.to_le_bytes());
        v[0x3c..0x40].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
        v[0x44..0x48].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
        for k in 0..109 {
            let at = 0x4c + 4 * k;
            v[at..at + 4].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        }
        v[0x4c..0x50].copy_from_slice(&0u32.to_le_bytes());
        // FAT: sector 0 is a FAT sector, the directory ends its chain, the
        // rest is free.
        for s in 0..128u32 {
            let val: u32 = match s {
                0 => 0xffff_fffd,
                s if s == dir => END_OF_CHAIN,
                s if s < sectors => s + 1,
                _ => 0xffff_ffff,
            };
            let at = 512 + 4 * s as usize;
            v[at..at + 4].copy_from_slice(&val.to_le_bytes());
        }
        let d = 512 * (dir as usize + 1);
        v[d..d + 128].copy_from_slice(&entry("Root Entry", 5, clsid));
        for (i, stream) in streams.iter().enumerate().take(3) {
            let at = d + 128 * (i + 1);
            v[at..at + 128].copy_from_slice(&entry(stream, 2, &[0; 16]));
        }
        v
    }

    fn decide(file: &[u8], chunk: usize, window: u64, kind: &Ole2Kind) -> Result<(), Refusal> {
        let mut s = Ole2Scan::new(window);
        for c in file.chunks(chunk.max(1)) {
            s.push(c)?;
        }
        s.finish(kind, false)
    }

    #[test]
    fn reads_the_directory_anywhere_in_the_window() {
        let doc = compound(&WORD.clsids[0], "WordDocument", 3, 8);
        for chunk in [1, 7, 512, 4096] {
            assert_eq!(decide(&doc, chunk, 1 << 20, &WORD), Ok(()));
        }
        assert_eq!(decide(&doc, 100, 1 << 20, &EXCEL), Err("ole2: root class id of another type"));
        let far = compound(&[0; 16], "WordDocument", 100, 101);
        assert_eq!(decide(&far, 999, 1 << 20, &WORD), Ok(()));
        assert_eq!(decide(&far, 999, 8 * 1024, &WORD), Err("ole2: directory beyond the inspection window"));
        let msi = compound(&MSI_CLSIDS[0], "WordDocument", 2, 4);
        assert_eq!(decide(&msi, 64, 1 << 20, &WORD), Err("ole2: windows installer package"));
        let no_stream = compound(&[0; 16], "Data", 2, 4);
        assert_eq!(decide(&no_stream, 64, 1 << 20, &WORD), Err("ole2: main stream of the type missing"));
        let macros = {
            let mut m = compound(&[0; 16], "WordDocument", 2, 4);
            let d = 512 * 3 + 256;
            m[d..d + 128].copy_from_slice(&entry("Macros", 1, &[0; 16]));
            m
        };
        assert_eq!(decide(&macros, 64, 1 << 20, &WORD), Err("ole2: macro storage"));
        let mut s = Ole2Scan::new(1 << 20);
        s.push(&macros).expect("push");
        assert_eq!(s.finish(&WORD, true), Ok(()));
    }

    #[test]
    fn truncated_and_malformed_input_is_refused_without_panic() {
        let doc = compound(&[0; 16], "WordDocument", 3, 6);
        // Every cut before the end of the directory sector.
        for cut in (0..512 * 5).step_by(37) {
            assert!(decide(&doc[..cut], 13, 1 << 20, &WORD).is_err(), "cut at {cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3000 {
            let mut bad = doc.clone();
            for _ in 0..1 + round % 4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % bad.len();
                bad[at] = (seed >> 32) as u8;
            }
            let _ = decide(&bad, 1 + round % 700, 1 << 20, &WORD);
        }
        // A directory chain that loops.
        let mut looped = doc.clone();
        let at = 512 + 4 * 3;
        looped[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(decide(&looped, 50, 1 << 20, &WORD), Err("ole2: bad directory chain"));
        // Directory sector past the end of the file.
        let mut past = doc.clone();
        past[0x30..0x34].copy_from_slice(&40u32.to_le_bytes());
        assert!(decide(&past, 50, 1 << 20, &WORD).is_err());
    }
}
