//! Tests of the file rules the multipart inspector applies to each file
//! part: declared type, extension and content agree on one allowed type,
//! and the file name is accepted.

use http::HeaderValue;

use super::super::test_support::{
    all_rules, body_of, check, check_kind, multipart, rules, run_body, samples, split, ty, Form,
};
use super::super::{classify, BodyKind, Violation};

/// (type, file name, declared media type, content)
fn cases() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    vec![
        ("pdf", "paper.pdf", "application/pdf", samples::pdf()),
        ("png", "scan.png", "image/png", samples::png()),
        ("jpeg", "photo.JPG", "image/jpeg", samples::jpeg()),
        ("gif", "anim.gif", "image/gif", samples::gif()),
        ("webp", "pic.webp", "image/webp", samples::webp()),
        ("tiff", "fax.tif", "image/tiff", samples::tiff_le()),
        ("tiff", "fax.tiff", "image/tiff", samples::tiff_be()),
        ("bmp", "old.bmp", "image/bmp", samples::bmp()),
        ("doc", "letter.doc", "application/msword", samples::ole2()),
        ("xls", "sheet.xls", "application/vnd.ms-excel", samples::ole2()),
        ("ppt", "deck.ppt", "application/vnd.ms-powerpoint", samples::ole2()),
        ("txt", "notes.txt", "text/plain; charset=utf-8", samples::txt()),
        ("csv", "data.csv", "text/csv", samples::csv()),
        ("md", "README.md", "text/markdown", samples::md()),
        ("html", "page.html", "text/html", samples::html()),
        ("json", "data.json", "application/json", samples::json()),
    ]
}

#[tokio::test]
async fn accepts_each_type_and_refuses_it_as_another() {
    for (name, filename, media, data) in cases() {
        for declared in [Some(media), Some("application/octet-stream"), None] {
            let body = Form::new().file(filename, declared, &data).end();
            assert_eq!(check(&body, all_rules()).await, Ok(()), "{name} as {declared:?}");
        }
        // Allowed only when its type is on the route's list.
        let body = Form::new().file(filename, Some(media), &data).end();
        let others: Vec<&str> = crate::upload::types::all().iter().map(|t| t.name).filter(|n| *n != name).collect();
        assert_eq!(check(&body, rules(&others)).await, Err(Violation::FileType), "{name} not allowed");
        // The same bytes named and declared as another type.
        let (other_name, other_media) =
            if name == "pdf" { ("x.png", "image/png") } else { ("x.pdf", "application/pdf") };
        for declared in [other_media, "application/octet-stream"] {
            let body = Form::new().file(other_name, Some(declared), &data).end();
            assert_eq!(
                check(&body, all_rules()).await,
                Err(Violation::FileType),
                "{name} bytes as {other_name} {declared}"
            );
        }
        // A raw body of the type.
        let kind = classify(Some(&HeaderValue::from_static(media)), &all_rules());
        assert_eq!(kind, Ok(BodyKind::Raw(ty(name))));
        if let Ok(kind) = kind {
            assert_eq!(check_kind(&data, kind, all_rules()).await, Ok(()), "raw {name}");
        }
    }
}

#[tokio::test]
async fn declared_type_extension_and_content_must_agree() {
    let pdf = samples::pdf();
    let cases: &[(&str, Option<&str>)] = &[
        ("paper.pdf", Some("image/png")),
        ("paper.png", Some("application/pdf")),
        ("paper", Some("application/pdf")),
        ("paper.pdf", Some("not a media type")),
        ("paper.pdf", Some("application/x-msdownload")),
    ];
    for (filename, declared) in cases {
        let body = Form::new().file(filename, *declared, &pdf).end();
        assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType), "{filename} {declared:?}");
    }
    // An OLE2 file can be any of doc/xls/ppt, picked by name and type.
    let body = Form::new().file("a.xls", Some("application/msword"), &samples::ole2()).end();
    assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType));
}

#[tokio::test]
async fn refuses_disguised_executable_before_the_end() {
    let exe = samples::exe();
    let body = Form::new().text("note", "hello").file("report.pdf", Some("application/pdf"), &exe).end();
    assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType));
    for seed in 1..6 {
        let o = run_body(body_of(split(&body, seed, 64)), multipart(), all_rules()).await;
        assert_eq!(o.err, Some(Violation::FileType));
        assert!(o.out.len() < body.len());
    }
    for (name, media) in [("notes.txt", "text/plain"), ("a.docx", "application/octet-stream")] {
        let body = Form::new().file(name, Some(media), &exe).end();
        assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType), "{name}");
    }
    let raw = check_kind(&exe, BodyKind::Raw(ty("pdf")), all_rules()).await;
    assert_eq!(raw, Err(Violation::FileType));
}

#[tokio::test]
async fn filename_rules_apply_to_file_parts() {
    let pdf = samples::pdf();
    for bad in
        ["../../etc/passwd.pdf", "..\\x.pdf", "invoice.pdf.exe", "x.exe", "", "...", "a\u{202e}fdp.pdf", "x.pdf:stream"]
    {
        let body = Form::new().file(bad, Some("application/pdf"), &pdf).end();
        assert_eq!(check(&body, all_rules()).await, Err(Violation::FileName), "{bad:?}");
    }
    let long = format!("{}.pdf", "a".repeat(252));
    let body = Form::new().file(&long, None, &pdf).end();
    assert_eq!(check(&body, all_rules()).await, Err(Violation::FileName));
    let body = Form::new().file("报告 (final).pdf", None, &pdf).end();
    assert_eq!(check(&body, all_rules()).await, Ok(()));
}
