//! Real zip-based document samples (docx, xlsx, pptx, odt, jar, plain zip)
//! written with the `zip` crate, pushed through the public inspector API as
//! multipart uploads and raw bodies, plus the full matrix of every type in
//! the table.

use std::convert::Infallible;
use std::io::{Cursor, Write};
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use moat::upload::{
    classify, inspect, lookup, types, BodyKind, InspectError, Sniff, UploadRules, Violation, SNIFF_WINDOW,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const BOUNDARY: &str = "moat-sample-boundary-31337";

fn all_rules() -> UploadRules {
    UploadRules {
        types: types::all().iter().collect(),
        max_files: 8,
        max_file_size: 8 << 20,
        max_field_bytes: 4096,
        fields: Vec::new(),
        ..UploadRules::default()
    }
}

/// Every type but the macro-enabled ones: macros and active content are
/// refused in every Office type.
fn document_rules() -> UploadRules {
    UploadRules { types: types::all().iter().filter(|t| !t.is_macro()).collect(), ..all_rules() }
}

/// Writes a zip archive of `(name, content, stored)` entries in order.
fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content, stored) in entries {
        let method = if *stored { CompressionMethod::Stored } else { CompressionMethod::Deflated };
        let options = SimpleFileOptions::default().compression_method(method);
        w.start_file(*name, options).expect("start entry");
        w.write_all(content).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

/// `[Content_Types].xml` declaring `main` as the content type of the main part `part`.
fn content_types(part: &str, main: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/{part}" ContentType="{main}"/></Types>"#
    )
    .into_bytes()
}

const DOCX_MAIN: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
const XLSX_MAIN: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml";
const PPTX_MAIN: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml";
const DOCM_MAIN: &str = "application/vnd.ms-word.document.macroEnabled.main+xml";
const XLSM_MAIN: &str = "application/vnd.ms-excel.sheet.macroEnabled.main+xml";
const PPTM_MAIN: &str = "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml";

fn docx_ct() -> Vec<u8> {
    content_types("word/document.xml", DOCX_MAIN)
}

const RELS: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>"#;

fn docx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &docx_ct(), false),
        ("_rels/.rels", RELS, false),
        ("word/document.xml", br#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>"#, false),
    ])
}

fn xlsx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("xl/workbook.xml", XLSX_MAIN), false),
        ("_rels/.rels", RELS, false),
        ("xl/workbook.xml", b"<workbook/>", false),
        ("xl/worksheets/sheet1.xml", b"<worksheet/>", false),
    ])
}

fn pptx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("ppt/presentation.xml", PPTX_MAIN), false),
        ("_rels/.rels", RELS, false),
        ("ppt/presentation.xml", b"<p:presentation/>", false),
    ])
}

const ODT_MIME: &[u8] = b"application/vnd.oasis.opendocument.text";

fn odt() -> Vec<u8> {
    zip_of(&[
        ("mimetype", ODT_MIME, true),
        ("META-INF/manifest.xml", b"<manifest:manifest/>", false),
        ("content.xml", b"<office:document-content/>", false),
    ])
}

fn plain_zip() -> Vec<u8> {
    zip_of(&[("readme.txt", b"hello", false), ("data/x.bin", &[1, 2, 3], false)])
}

fn jar() -> Vec<u8> {
    zip_of(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nMain-Class: Main\r\n", false),
        ("Main.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34", false),
    ])
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A zip as streaming writers produce it: stored entries whose sizes follow
/// the data in a data descriptor (flag bit 3), then a central directory.
fn streamed_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        out.extend_from_slice(b"PK\x03\x04\x14\x00\x08\x00\x00\x00\x00\x00\x21\x00");
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"PK\x07\x08");
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x08\x00\x00\x00\x00\x00\x21\x00");
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn form_file(filename: &str, ctype: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut body =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n")
            .into_bytes();
    if let Some(c) = ctype {
        body.extend_from_slice(format!("Content-Type: {c}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn split(data: &[u8], seed: u64, max: usize) -> Vec<Bytes> {
    let mut s = seed | 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let end = (i + 1 + (s as usize % max)).min(data.len());
        out.push(Bytes::copy_from_slice(&data[i..end]));
        i = end;
    }
    out
}

/// Runs `body` under several chunkings; checks that an accepted body comes
/// out unchanged and a refused one is cut short, and returns the verdict.
async fn run(body: &[u8], kind: BodyKind) -> Result<(), Violation> {
    run_with(body, kind, all_rules()).await
}

async fn run_with(body: &[u8], kind: BodyKind, rules: UploadRules) -> Result<(), Violation> {
    let mut verdicts = Vec::new();
    for (seed, max) in [(1, body.len().max(1)), (2, 5), (3, 300), (4, 9000)] {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            split(body, seed, max).into_iter().map(|b| Ok(Frame::data(b))).collect();
        let mut ib =
            inspect(StreamBody::new(futures_util::stream::iter(frames)), kind.clone(), Arc::new(rules.clone()), None);
        let mut out = Vec::new();
        let mut verdict = Ok(());
        while let Some(frame) = ib.frame().await {
            match frame {
                Ok(f) => out.extend_from_slice(&f.into_data().expect("data")),
                Err(InspectError::Violation(v, _)) => {
                    verdict = Err(v);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        match verdict {
            Ok(()) => assert_eq!(out, body),
            Err(v) => {
                assert!(out.len() < body.len());
                let _ = v;
            }
        }
        verdicts.push(verdict);
    }
    verdicts.dedup();
    assert_eq!(verdicts.len(), 1, "same verdict for every chunking");
    verdicts[0]
}

async fn upload(filename: &str, ctype: Option<&str>, data: &[u8]) -> Result<(), Violation> {
    upload_to(all_rules(), filename, ctype, data).await
}

async fn upload_to(rules: UploadRules, filename: &str, ctype: Option<&str>, data: &[u8]) -> Result<(), Violation> {
    let kind = BodyKind::Multipart { boundary: BOUNDARY.into() };
    run_with(&form_file(filename, ctype, data), kind, rules).await
}

const DOCX_MT: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX_MT: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX_MT: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
const ODT_MT: &str = "application/vnd.oasis.opendocument.text";

#[tokio::test]
async fn office_documents_are_accepted() {
    for (name, mt, data) in [
        ("letter.docx", DOCX_MT, docx()),
        ("sheet.xlsx", XLSX_MT, xlsx()),
        ("deck.pptx", PPTX_MT, pptx()),
        ("text.odt", ODT_MT, odt()),
    ] {
        assert_eq!(upload(name, Some(mt), &data).await, Ok(()), "{name}");
        assert_eq!(upload(name, Some("application/octet-stream"), &data).await, Ok(()), "{name}");
        assert_eq!(upload(name, None, &data).await, Ok(()), "{name}");
        let kind = classify(Some(&HeaderValue::from_static(mt)), &all_rules()).expect("raw type");
        assert_eq!(run(&data, kind).await, Ok(()), "raw {name}");
    }
    let streamed = streamed_zip(&[
        ("[Content_Types].xml", &docx_ct()),
        ("_rels/.rels", RELS),
        ("word/document.xml", b"<w:document/>"),
    ]);
    zip::ZipArchive::new(Cursor::new(streamed.clone())).expect("valid zip");
    assert_eq!(upload("streamed.docx", Some(DOCX_MT), &streamed).await, Ok(()));
}

#[tokio::test]
async fn office_documents_refused_as_another_type() {
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("x.docx", DOCX_MT, xlsx()),
        ("x.docx", DOCX_MT, pptx()),
        ("x.xlsx", XLSX_MT, docx()),
        ("x.pptx", PPTX_MT, docx()),
        ("x.odt", ODT_MT, docx()),
        ("x.docx", DOCX_MT, odt()),
        ("x.pdf", "application/pdf", docx()),
        ("x.txt", "text/plain", odt()),
        ("x.doc", "application/msword", docx()),
    ];
    for (name, mt, data) in cases {
        assert_eq!(upload(name, Some(mt), &data).await, Err(Violation::FileType), "{name}");
    }
    // Right content, wrong declared type for the extension.
    assert_eq!(upload("x.docx", Some(XLSX_MT), &docx()).await, Err(Violation::FileType));
}

#[tokio::test]
async fn zips_and_jars_are_not_documents() {
    for name in ["x.docx", "x.xlsx", "x.pptx", "x.odt"] {
        assert_eq!(upload(name, None, &plain_zip()).await, Err(Violation::FileType), "zip {name}");
        assert_eq!(upload(name, None, &jar()).await, Err(Violation::FileType), "jar {name}");
    }
    // A docx that is also a runnable Java archive.
    let hybrid = zip_of(&[
        ("[Content_Types].xml", &docx_ct(), false),
        ("word/document.xml", b"<w:document/>", false),
        ("META-INF/MANIFEST.MF", b"Main-Class: Main\r\n", false),
        ("Main.class", b"\xca\xfe\xba\xbe", false),
    ]);
    assert_eq!(upload("x.docx", Some(DOCX_MT), &hybrid).await, Err(Violation::FileType));
    let class_only =
        zip_of(&[("word/document.xml", b"<w:document/>", false), ("a/B.class", b"\xca\xfe\xba\xbe", false)]);
    assert_eq!(upload("x.docx", None, &class_only).await, Err(Violation::FileType));
    // A macro-enabled document renamed.
    let docm = zip_of(&[
        ("[Content_Types].xml", &docx_ct(), false),
        ("word/document.xml", b"<w:document/>", false),
        ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0", false),
    ]);
    assert_eq!(upload_to(document_rules(), "x.docx", Some(DOCX_MT), &docm).await, Err(Violation::FileType));
    // ... and the same as the macro type itself, on a route listing it.
    assert_eq!(upload("x.docm", None, &docm).await, Ok(()));
    // An ODT that is also a Java archive.
    let odt_jar = zip_of(&[("mimetype", ODT_MIME, true), ("META-INF/MANIFEST.MF", b"Main-Class: Main\r\n", false)]);
    assert_eq!(upload("x.odt", None, &odt_jar).await, Err(Violation::FileType));
    // ODT rules: `mimetype` first, stored, exact content.
    let deflated = zip_of(&[("mimetype", ODT_MIME, false), ("content.xml", b"<x/>", false)]);
    assert_eq!(upload("x.odt", None, &deflated).await, Err(Violation::FileType));
    let second = zip_of(&[("content.xml", b"<x/>", true), ("mimetype", ODT_MIME, true)]);
    assert_eq!(upload("x.odt", None, &second).await, Err(Violation::FileType));
    let template = zip_of(&[("mimetype", b"application/vnd.oasis.opendocument.text-template", true)]);
    assert_eq!(upload("x.odt", None, &template).await, Err(Violation::FileType));
}

/// Entries are read from the central directory, as Office reads them, not
/// from a walk of the first bytes: a main part past the first 64 KiB is
/// found. A central directory larger than the tail bound (1/64 of the
/// route's `inspect_window`) is refused; a wider window accepts it.
#[tokio::test]
async fn ooxml_entries_are_read_from_the_central_directory() {
    let thumbnail = vec![0x5au8; SNIFF_WINDOW + 1000];
    let late = zip_of(&[
        ("[Content_Types].xml", &docx_ct(), false),
        ("docProps/thumbnail.jpeg", &thumbnail, true),
        ("word/document.xml", b"<w:document/>", false),
    ]);
    assert_eq!(upload("late.docx", None, &late).await, Ok(()));
    let early = zip_of(&[
        ("[Content_Types].xml", &docx_ct(), false),
        ("word/document.xml", b"<w:document/>", false),
        ("word/media/image1.jpeg", &thumbnail, true),
    ]);
    assert_eq!(upload("early.docx", None, &early).await, Ok(()));
    // The main part declared but not in the central directory.
    let missing = zip_of(&[("[Content_Types].xml", &docx_ct(), false), ("word/other.xml", b"<x/>", false)]);
    assert_eq!(upload("missing.docx", None, &missing).await, Err(Violation::FileType));
    // 700 entries with long names: a central directory of about 170 KiB.
    let names: Vec<String> = (0..700).map(|i| format!("word/media/{}{i:04}.xml", "n".repeat(180))).collect();
    let ct = docx_ct();
    let mut entries: Vec<(&str, &[u8], bool)> =
        vec![("[Content_Types].xml", &ct, false), ("word/document.xml", b"<w:document/>", false)];
    entries.extend(names.iter().map(|n| (n.as_str(), &b"<x/>"[..], true)));
    let big_cd = zip_of(&entries);
    let narrow = UploadRules { inspect_window: moat::upload::MIN_INSPECT_WINDOW, ..all_rules() };
    assert_eq!(upload_to(narrow, "many.docx", None, &big_cd).await, Err(Violation::FileType));
    assert_eq!(upload("many.docx", None, &big_cd).await, Ok(()));
}

/// Every type in the table accepts a real sample of itself, and no other
/// type with different extensions accepts it under its own name.
#[tokio::test]
async fn every_type_has_a_sample() {
    let samples: Vec<(&str, Vec<u8>)> = vec![
        ("pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n".to_vec()),
        ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x00IEND\xae\x42\x60\x82".to_vec()),
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9".to_vec()),
        ("gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
        ("webp", b"RIFF\x1a\x00\x00\x00WEBPVP8 \x0e\x00\x00\x00\x30\x01\x00\x9d\x01\x2a\x01\x00\x01\x00\x00\x00\x00\x00".to_vec()),
        ("tiff", b"MM\x00*\x00\x00\x00\x08\x00\x00".to_vec()),
        ("bmp", {
            let mut v = b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00".to_vec();
            v.resize(58, 0);
            v
        }),
        ("docx", docx()),
        ("pptx", pptx()),
        ("xlsx", xlsx()),
        ("docm", macro_doc("word/document.xml", DOCM_MAIN, "word/vbaProject.bin")),
        ("xlsm", macro_doc("xl/workbook.xml", XLSM_MAIN, "xl/vbaProject.bin")),
        ("pptm", macro_doc("ppt/presentation.xml", PPTM_MAIN, "ppt/vbaProject.bin")),
        ("doc", fixture("report.doc")),
        ("ppt", fixture("slides.ppt")),
        ("xls", fixture("figures.xls")),
        ("odt", odt()),
        ("ods", fixture("figures.ods")),
        ("odp", fixture("slides.odp")),
        ("txt", b"plain text\n".to_vec()),
        ("csv", b"a,b\n1,2\n".to_vec()),
        ("md", b"# heading\n".to_vec()),
        ("html", b"<!doctype html><title>x</title>".to_vec()),
        ("json", b"{\"a\":1}".to_vec()),
    ];
    assert_eq!(samples.len(), types::all().len());
    for (name, data) in &samples {
        let t = lookup(name).expect("type");
        assert_eq!(t.check_content(data, true), Sniff::Match, "{name}");
        let filename = format!("sample.{}", t.extensions[0]);
        assert_eq!(upload(&filename, Some(t.media_types[0]), data).await, Ok(()), "{name}");
        for other in types::all() {
            let same_family = other.check_content(data, true) == Sniff::Match;
            if other.name == *name || same_family {
                continue;
            }
            let filename = format!("sample.{}", other.extensions[0]);
            assert_eq!(
                upload(&filename, Some(other.media_types[0]), data).await,
                Err(Violation::FileType),
                "{name} as {}",
                other.name
            );
        }
    }
}

/// A real file of the corpus (`tests/fixtures/uploads/`).
fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uploads").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A macro-enabled OOXML package: main part `main` of content type `ct`,
/// a VBA project at `vba`.
fn macro_doc(main: &str, ct: &str, vba: &str) -> Vec<u8> {
    let types = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/{main}" ContentType="{ct}"/></Types>"#
    );
    zip_of(&[
        ("[Content_Types].xml", types.as_bytes(), false),
        ("_rels/.rels", RELS, false),
        (main, b"<root/>", false),
        (vba, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", false),
    ])
}
