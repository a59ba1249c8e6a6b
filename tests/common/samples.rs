//! Real samples of every upload type, generated at test time.
#![allow(dead_code)]

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// `[Content_Types].xml` declaring `main` as the content type of the main part `part`.
pub fn content_types(part: &str, main: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/{part}" ContentType="{main}"/></Types>"#
    )
    .into_bytes()
}

pub const DOCX_MAIN: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
pub const XLSX_MAIN: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml";
pub const PPTX_MAIN: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml";
pub const DOCM_MAIN: &str = "application/vnd.ms-word.document.macroEnabled.main+xml";

const RELS: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>"#;

pub fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content, stored) in entries {
        let method = if *stored { CompressionMethod::Stored } else { CompressionMethod::Deflated };
        let options = SimpleFileOptions::default().compression_method(method);
        w.start_file(*name, options).expect("start entry");
        w.write_all(content).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

pub fn docx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("word/document.xml", DOCX_MAIN), false),
        ("_rels/.rels", RELS, false),
        ("word/document.xml", br#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>"#, false),
    ])
}

pub fn xlsx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("xl/workbook.xml", XLSX_MAIN), false),
        ("_rels/.rels", RELS, false),
        ("xl/workbook.xml", b"<workbook/>", false),
        ("xl/worksheets/sheet1.xml", b"<worksheet/>", false),
    ])
}

pub fn pptx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", &content_types("ppt/presentation.xml", PPTX_MAIN), false),
        ("_rels/.rels", RELS, false),
        ("ppt/presentation.xml", b"<p:presentation/>", false),
    ])
}

pub fn odt() -> Vec<u8> {
    zip_of(&[
        ("mimetype", ODT_MIME, true),
        ("META-INF/manifest.xml", b"<manifest:manifest/>", false),
        ("content.xml", b"<office:document-content/>", false),
    ])
}

pub fn plain_zip() -> Vec<u8> {
    zip_of(&[("readme.txt", b"hello", false), ("data/x.bin", &[1, 2, 3], false)])
}

pub fn jar() -> Vec<u8> {
    zip_of(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nMain-Class: Main\r\n", false),
        ("Main.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34", false),
    ])
}

/// A real file of the corpus (`tests/fixtures/uploads/`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uploads").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (type name, file extension, media type, bytes) for every type in moat's table.
pub fn all() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    vec![
        ("pdf", "pdf", "application/pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n".to_vec()),
        ("png", "png", "image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x00IEND\xae\x42\x60\x82".to_vec()),
        ("jpeg", "jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9".to_vec()),
        ("gif", "gif", "image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
        ("webp", "webp", "image/webp", b"RIFF\x1a\x00\x00\x00WEBPVP8 \x0e\x00\x00\x00\x30\x01\x00\x9d\x01\x2a\x01\x00\x01\x00\x00\x00\x00\x00".to_vec()),
        ("tiff", "tiff", "image/tiff", b"MM\x00*\x00\x00\x00\x08\x00\x00".to_vec()),
        ("bmp", "bmp", "image/bmp", {
            let mut v = b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00".to_vec();
            v.resize(58, 0);
            v
        }),
        ("docx", "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx()),
        ("pptx", "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", pptx()),
        ("xlsx", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx()),
        ("doc", "doc", "application/msword", fixture("report.doc")),
        ("ppt", "ppt", "application/vnd.ms-powerpoint", fixture("slides.ppt")),
        ("xls", "xls", "application/vnd.ms-excel", fixture("figures.xls")),
        ("odt", "odt", "application/vnd.oasis.opendocument.text", odt()),
        ("txt", "txt", "text/plain", b"plain text\n".to_vec()),
        ("csv", "csv", "text/csv", b"a,b\n1,2\n".to_vec()),
        ("md", "md", "text/markdown", b"# heading\n".to_vec()),
        ("html", "html", "text/html", b"<!doctype html><title>x</title>".to_vec()),
        ("json", "json", "application/json", b"{\"a\":1}".to_vec()),
    ]
}

/// A minimal Windows executable header.
pub fn exe() -> Vec<u8> {
    let mut v = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    v.resize(512, 0);
    v[0x3c] = 0x80;
    v
}

pub const BOUNDARY: &str = "----moatTestBoundary7MA4YWxkTrZu0gW";

/// One multipart part.
pub fn part(name: &str, filename: Option<&str>, ctype: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut v = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").into_bytes();
    if let Some(f) = filename {
        v.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    if let Some(c) = ctype {
        v.extend_from_slice(format!("Content-Type: {c}\r\n").as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

/// Parts + the closing boundary.
pub fn form(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<u8> = parts.concat();
    v.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    v
}

pub fn form_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}
const ODT_MIME: &[u8] = b"application/vnd.oasis.opendocument.text";

/// A multipart body of one PDF file part `filename` holding `size` bytes of
/// noise (seed `seed`), generated as a stream: (part head, tail, body).
pub fn streamed_pdf_form(
    filename: &str,
    seed: u64,
    size: u64,
) -> (String, String, impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static) {
    use futures_util::StreamExt;
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    );
    let tail = format!("\n%%EOF\r\n--{BOUNDARY}--\r\n");
    let (noise, _) = super::noise_stream(seed, size);
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(head.clone()))])
        .chain(noise)
        .chain(futures_util::stream::iter([Ok(bytes::Bytes::from(tail.clone()))]));
    (head, tail, body)
}
