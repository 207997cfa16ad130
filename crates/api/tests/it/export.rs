use axum::http::{header, StatusCode};
use serde_json::json;

use crate::support::*;

async fn world_with_rows() -> (World, String) {
    let w = World::new();
    let items = json!([
        purchase(MA, "A0000001", 1, 12345, "2026-11-20T10:00:00+08:00"),
        purchase(MA, "A0000002", 2, 500, "2026-11-20T11:00:00+08:00"),
    ]);
    assert_eq!(w.ingest(&w.key_all, items).await.status, StatusCode::CREATED);
    let t = w.login("a-admin").await;
    (w, t)
}

#[tokio::test]
async fn csv_export_is_utf8_with_bom_and_names_units_and_zone() {
    let (w, t) = world_with_rows().await;
    let r = w.get("/api/v1/transactions/export?from=2026-11-20&to=2026-11-20", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap().contains("attachment"));
    assert!(r.bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM");
    let text = String::from_utf8(r.bytes[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("交易时间(Asia/Shanghai),清算日期,商户号"), "{}", lines[0]);
    assert!(lines[0].contains("金额(元)"));
    assert!(lines[1].contains("2026-11-20 11:00:00") && lines[1].contains(",5.00,"), "{}", lines[1]);
    assert!(lines[2].contains(",123.45,") && lines[2].contains("622202*********0128"), "{}", lines[2]);
    assert!(!text.contains("6222021234567890128"), "no clear PAN in exports");
    let en = w.get("/api/v1/transactions/export?from=2026-11-20&to=2026-11-20&lang=en", &t).await;
    assert!(String::from_utf8(en.bytes).unwrap().contains("amount (yuan)"));
}

#[tokio::test]
async fn gbk_and_xlsx_exports() {
    let (w, t) = world_with_rows().await;
    let r = w.get("/api/v1/transactions/export?from=2026-11-20&to=2026-11-20&encoding=gbk", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
    let (text, _, had_errors) = encoding_rs::GBK.decode(&r.bytes);
    assert!(!had_errors);
    assert!(text.starts_with("交易时间(Asia/Shanghai)"), "{text}");
    assert!(text.contains("消费"));
    let x = w.get("/api/v1/transactions/export?from=2026-11-20&to=2026-11-20&format=xlsx", &t).await;
    assert_eq!(x.status, StatusCode::OK);
    assert!(x.bytes.starts_with(b"PK\x03\x04"), "an XLSX is a zip file");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(x.bytes)).unwrap();
    let mut sheet = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(), &mut sheet).unwrap();
    assert!(sheet.contains("<v>123.45</v>"), "amount is a number cell");
    assert!(sheet.contains("金额(元)"));
    assert_eq!(sheet.matches("<row ").count(), 3);
}
