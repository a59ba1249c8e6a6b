//! Files crafted to fool an upload inspector that looks only at first bytes
//! or walks local headers: each is sent through a real moat process to a
//! recording upstream, must be refused (415 `upload_type`, the failed check
//! logged), and the upstream must never receive it complete. The same files
//! fed to the inspector in random chunk sizes get the same verdict.

use crate::common;

use std::convert::Infallible;
use std::io::{Cursor, Write};
use std::sync::Arc;

use bytes::Bytes;
use common::samples::{self, content_types, fixture, DOCX_MAIN};
use common::*;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use moat::upload::{inspect, lookup, BodyKind, InspectError, UploadRules, Violation};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const TYPES: &str = "[\"pdf\", \"png\", \"jpeg\", \"gif\", \"docx\", \"xlsx\", \"pptx\", \"odt\", \"doc\", \"xls\", \"ppt\", \"json\", \"txt\"]";
const BOUNDARY: &str = samples::BOUNDARY;

fn config(up: &Upstream, pki: &Pki) -> String {
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[rate_limit]\ndefault = \"off\"\n\
         [[routes]]\nname = \"docs\"\npath = \"/docs\"\nmax_body = \"64MiB\"\nupload = {{ types = {TYPES} }}\n\
         [[routes]]\nname = \"narrow\"\npath = \"/narrow\"\nmax_body = \"64MiB\"\n\
         upload = {{ types = {TYPES}, inspect_window = \"8MiB\" }}\n",
        up.url(),
        c.display(),
        k.display()
    )
}

/// Incompressible filler.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Noise::new(seed).fill(&mut v);
    v
}

/// A zip of `(name, content, stored)` entries in order.
fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content, stored) in entries {
        let method = if *stored { CompressionMethod::Stored } else { CompressionMethod::Deflated };
        w.start_file(*name, SimpleFileOptions::default().compression_method(method)).expect("entry");
        w.write_all(content).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// Makes the first local header claim a compressed size that would carry a
/// local-header walk past every later entry.
fn inflate_first_header(mut z: Vec<u8>) -> Vec<u8> {
    assert_eq!(&z[..4], b"PK\x03\x04");
    z[18..22].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    z
}

fn jar() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("word/document.xml", DOCX_MAIN), false),
        ("word/document.xml", b"<w:document/>", false),
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nMain-Class: Main\r\n", false),
        ("Main.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34", false),
    ])
}

fn docm() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("word/document.xml", DOCX_MAIN), false),
        ("word/document.xml", b"<w:document/>", false),
        ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", false),
    ])
}

/// A docx with `late` (name, content) after 96 KiB of stored media.
fn docx_with_late(late: (&str, &[u8])) -> Vec<u8> {
    let media = noise(96 * 1024, 7);
    zip_of(&[
        ("[Content_Types].xml", &content_types("word/document.xml", DOCX_MAIN), false),
        ("word/document.xml", b"<w:document/>", false),
        ("word/media/image1.png", &media, true),
        (late.0, late.1, false),
    ])
}

const MSI_CLSID: [u8; 16] = *b"\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46";

fn ole2_entry(name: &str, ty: u8, clsid: &[u8; 16]) -> Vec<u8> {
    let mut e = vec![0u8; 128];
    let units: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    e[..units.len()].copy_from_slice(&units);
    e[0x40..0x42].copy_from_slice(&((units.len() + 2) as u16).to_le_bytes());
    e[0x42] = ty;
    e[0x43] = 1;
    e[0x44..0x50].copy_from_slice(&[0xff; 12]);
    e[0x50..0x60].copy_from_slice(clsid);
    e
}

/// A compound file of `sectors` sectors of `ssz` bytes (512: version 3,
/// 4096: version 4): the FAT in the first sectors, the directory (root with
/// `clsid`, then `streams`) at sector `dir`, filler elsewhere.
fn compound_in(ssz: usize, clsid: &[u8; 16], streams: &[&str], dir: u32, sectors: u32) -> Vec<u8> {
    let per = (ssz / 4) as u32;
    let fat_sectors = sectors.div_ceil(per);
    assert!(fat_sectors <= 109 && dir >= fat_sectors && dir < sectors);
    let mut v = noise(ssz * (sectors as usize + 1), 3);
    v[..ssz].fill(0);
    v[..8].copy_from_slice(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1");
    v[0x18] = 0x3e;
    v[0x1a] = if ssz == 512 { 3 } else { 4 };
    v[0x1c] = 0xfe;
    v[0x1d] = 0xff;
    v[0x1e] = if ssz == 512 { 9 } else { 12 };
    v[0x20] = 6;
    v[0x2c..0x30].copy_from_slice(&fat_sectors.to_le_bytes());
    v[0x30..0x34].copy_from_slice(&dir.to_le_bytes());
    v[0x38..0x3c].copy_from_slice(&4096u32.to_le_bytes());
    v[0x3c..0x40].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
    v[0x44..0x48].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
    for k in 0..109u32 {
        let at = 0x4c + 4 * k as usize;
        let id = if k < fat_sectors { k } else { 0xffff_ffff };
        v[at..at + 4].copy_from_slice(&id.to_le_bytes());
    }
    for s in 0..fat_sectors * per {
        let val: u32 = match s {
            s if s < fat_sectors => 0xffff_fffd,
            s if s == dir => 0xffff_fffe,
            _ => 0xffff_ffff,
        };
        let at = ssz + 4 * s as usize;
        v[at..at + 4].copy_from_slice(&val.to_le_bytes());
    }
    let d = ssz * (dir as usize + 1);
    v[d..d + ssz].fill(0);
    v[d..d + 128].copy_from_slice(&ole2_entry("Root Entry", 5, clsid));
    for (i, s) in streams.iter().enumerate().take(3) {
        let at = d + 128 * (i + 1);
        v[at..at + 128].copy_from_slice(&ole2_entry(s, 2, &[0; 16]));
    }
    v
}

fn compound(clsid: &[u8; 16], streams: &[&str], dir: u32, sectors: u32) -> Vec<u8> {
    compound_in(512, clsid, streams, dir, sectors)
}

/// A Word document of about 9 MiB whose directory lies in its last sector,
/// past an inspection window of 8 MiB.
fn far_doc() -> Vec<u8> {
    compound_in(4096, &[0; 16], &["WordDocument"], 2290, 2300)
}

fn exe() -> Vec<u8> {
    let mut v = samples::exe();
    v[0x80..0x84].copy_from_slice(b"PE\x00\x00");
    v.extend_from_slice(&noise(2048, 9));
    v
}

fn pdf_head() -> Vec<u8> {
    let mut v = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\nstream\n".to_vec();
    v.extend_from_slice(&noise(80 * 1024, 5));
    v.extend_from_slice(b"\nendstream\n");
    v
}

/// (what, file name, bytes, route): every one must be refused.
fn attacks() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let mut out = vec![
        ("jar with an inflated first local header", "invoice.docx", inflate_first_header(jar()), "/docs"),
        ("docm with an inflated first local header", "letter.docx", inflate_first_header(docm()), "/docs"),
        ("jar as docx", "invoice.docx", jar(), "/docs"),
        ("docm as docx", "letter.docx", docm(), "/docs"),
        ("manifest past 64 KiB", "a.docx", docx_with_late(("META-INF/MANIFEST.MF", b"Main-Class: Main\r\n")), "/docs"),
        (
            "class past 64 KiB",
            "a.docx",
            docx_with_late(("org/x/Main.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34")),
            "/docs",
        ),
        (
            "vbaProject past 64 KiB",
            "a.docx",
            docx_with_late(("word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")),
            "/docs",
        ),
        (
            "msi renamed doc, directory past 64 KiB",
            "setup.doc",
            compound(&MSI_CLSID, &["WordDocument"], 300, 400),
            "/docs",
        ),
        ("doc whose directory lies past the inspection window", "far.doc", far_doc(), "/narrow"),
        ("xls without a workbook stream", "sheet.xls", compound(&[0; 16], &["WordDocument"], 300, 400), "/docs"),
    ];
    // Polyglots.
    let mut pdf_zip = pdf_head();
    pdf_zip.extend_from_slice(b"%%EOF\n");
    pdf_zip.extend_from_slice(&jar());
    out.push(("pdf with a zip appended after 64 KiB", "paper.pdf", pdf_zip, "/docs"));
    let mut pdf_jar = pdf_head();
    pdf_jar.extend_from_slice(&jar());
    pdf_jar.extend_from_slice(b"\n%%EOF\n");
    out.push(("pdf and jar, %%EOF last", "paper.pdf", pdf_jar, "/docs"));
    let mut pdf_exe = pdf_head();
    pdf_exe.extend_from_slice(&exe());
    pdf_exe.extend_from_slice(b"\n%%EOF\n");
    out.push(("pdf with an executable after 64 KiB", "paper.pdf", pdf_exe, "/docs"));
    let mut png_zip = samples::all().into_iter().find(|s| s.0 == "png").map(|s| s.3).unwrap_or_default();
    png_zip.extend_from_slice(&jar());
    out.push(("png with a zip appended", "pic.png", png_zip, "/docs"));
    let mut jpg_exe = fixture("picture.jpg");
    jpg_exe.extend_from_slice(&exe());
    out.push(("jpeg with an executable appended", "pic.jpg", jpg_exe, "/docs"));
    let mut json_exe = b"{\"text\": \"".to_vec();
    json_exe.extend(std::iter::repeat_n(b'a', 80 * 1024));
    json_exe.extend_from_slice(&exe());
    json_exe.extend_from_slice(b"\"}");
    out.push(("json part with an executable after 64 KiB", "data.json", json_exe, "/docs"));
    out
}

fn part(filename: &str, data: &[u8]) -> Vec<u8> {
    samples::form(&[samples::part("file", Some(filename), Some("application/octet-stream"), data)])
}

/// What the upstream got of `sent` was never all of it.
fn never_complete(up: &Upstream, sent: &[u8]) {
    let digest = sha256_hex(sent);
    for s in up.seen() {
        assert!(!(s.complete && s.sha256 == digest), "the upstream received the complete refused body");
        assert!(!s.complete || s.body_len < sent.len() as u64);
    }
}

async fn send(c: &reqwest::Client, url: &str, ctype: &str, body: Vec<u8>) -> Option<(u16, String)> {
    let res = c.post(url).header("content-type", ctype).body(body).send().await.ok()?;
    let status = res.status().as_u16();
    let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Some((status, id))
}

#[tokio::test]
async fn crafted_files_are_refused_and_never_delivered() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let ctype = samples::form_content_type();
    for (what, filename, data, route) in attacks() {
        let body = part(filename, &data);
        let answer = send(&c, &m.url(route), &ctype, body.clone()).await;
        let (status, id) = answer.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(status, 415, "{what}");
        never_complete(&up, &body);
        let line = m.access_line(&id).await;
        assert_eq!(line["reject_reason"], "upload_type", "{what}");
        let refusal =
            m.log_lines().into_iter().find(|l| l.contains(&id) && l.contains("upload refused while streaming"));
        let refusal = refusal.unwrap_or_else(|| panic!("{what}: the refusal was not logged"));
        assert!(refusal.contains("\"check\""), "{what}: {refusal}");
    }
    // Control: the same shapes without the payload pass.
    for (what, filename, data, route) in [
        ("doc with its directory past 64 KiB", "ok.doc", compound(&[0; 16], &["WordDocument"], 300, 400), "/docs"),
        ("doc past the narrow window on the default one", "far.doc", far_doc(), "/docs"),
        ("docx with late media", "ok.docx", docx_with_late(("word/styles.xml", b"<w:styles/>")), "/docs"),
    ] {
        let body = part(filename, &data);
        let (status, _) = send(&c, &m.url(route), &ctype, body.clone()).await.unwrap_or_else(|| panic!("{what}"));
        assert_eq!(status, 200, "{what}");
        assert_eq!(up.seen().pop().map(|s| s.sha256), Some(sha256_hex(&body)), "{what}");
    }
}

#[tokio::test]
async fn raw_json_with_an_executable_after_64_kib_is_refused() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let mut json = b"{\"text\": \"".to_vec();
    json.extend(std::iter::repeat_n(b'a', 80 * 1024));
    json.extend_from_slice(&exe());
    json.extend_from_slice(b"\"}");
    let (status, id) = send(&c, &m.url("/docs"), "application/json", json.clone()).await.expect("answer");
    assert_eq!(status, 415);
    assert_eq!(m.access_line(&id).await["reject_reason"], "upload_type");
    never_complete(&up, &json);
    // Invalid UTF-8 in the last byte.
    let mut bad = b"{\"text\": \"".to_vec();
    bad.extend(std::iter::repeat_n(b'a', 80 * 1024));
    bad.extend_from_slice(b"\"}\xff");
    assert_eq!(send(&c, &m.url("/docs"), "text/plain", bad.clone()).await.map(|a| a.0), Some(415));
    never_complete(&up, &bad);
}

/// `data` in chunks of 1..=max bytes at pseudo-random points.
fn split(data: &[u8], seed: u64, max: usize) -> Vec<Bytes> {
    let mut s = seed | 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let end = (i + 1 + (s as usize % max.max(1))).min(data.len());
        out.push(Bytes::copy_from_slice(&data[i..end]));
        i = end;
    }
    out
}

/// The family of checks that must refuse a crafted file: the whole-file
/// reader of its type, not the first-bytes check.
fn refusing_family(filename: &str) -> &'static [&'static str] {
    match filename.rsplit('.').next() {
        Some("docx") => &["zip:", "ooxml:"],
        Some("doc" | "xls") => &["ole2:"],
        Some("pdf" | "png" | "jpg") => &["tail:"],
        _ => &["text:"],
    }
}

async fn verdict(body: &[u8], rules: &UploadRules, chunks: Vec<Bytes>) -> Result<(), (Violation, &'static str)> {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks.into_iter().map(|b| Ok(Frame::data(b))).collect();
    let kind = BodyKind::Multipart { boundary: BOUNDARY.into() };
    let mut ib = inspect(StreamBody::new(futures_util::stream::iter(frames)), kind, Arc::new(rules.clone()), None);
    let mut out = 0usize;
    while let Some(frame) = ib.frame().await {
        match frame {
            Ok(f) => out += f.into_data().map_or(0, |d| d.len()),
            Err(InspectError::Violation(v, check)) => {
                assert!(out < body.len());
                return Err((v, check));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(out, body.len());
    Ok(())
}

#[tokio::test]
async fn crafted_files_refused_in_any_chunking() {
    let names = ["pdf", "png", "jpeg", "gif", "docx", "xlsx", "pptx", "odt", "doc", "xls", "ppt", "json", "txt"];
    let docs = UploadRules { types: names.iter().filter_map(|n| lookup(n)).collect(), ..UploadRules::default() };
    let narrow = UploadRules { inspect_window: moat::upload::MIN_INSPECT_WINDOW, ..docs.clone() };
    let mut seed = 0x0bad_c0de_1234_5678u64;
    for (what, filename, data, route) in attacks() {
        let rules = if route == "/narrow" { &narrow } else { &docs };
        let body = part(filename, &data);
        let whole = verdict(&body, rules, vec![Bytes::from(body.clone())]).await;
        let Err((Violation::FileType, check)) = whole else { panic!("{what}: {whole:?}") };
        assert!(refusing_family(filename).iter().any(|f| check.starts_with(f)), "{what}: refused by {check}");
        for max in [1usize, 7, 512, 4099, 70_000] {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if max == 1 && body.len() > 1 << 20 {
                continue;
            }
            let got = verdict(&body, rules, split(&body, seed, max)).await.map_err(|e| e.0);
            assert_eq!(got, Err(Violation::FileType), "{what}, chunks up to {max}");
        }
    }
}
