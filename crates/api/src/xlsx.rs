//! A minimal streaming XLSX writer: one worksheet of inline strings and numbers, written row by
//! row into a zip file, so an export of a million rows holds one row in memory.

use std::io::{Seek, Write};

use zip::write::SimpleFileOptions;

pub enum Cell<'a> {
    Text(&'a str),
    Number(f64),
}

pub struct XlsxWriter<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    row: u32,
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="transactions" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#;

impl<W: Write + Seek> XlsxWriter<W> {
    pub fn new(out: W) -> zip::result::ZipResult<Self> {
        let mut zip = zip::ZipWriter::new(out);
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            ("[Content_Types].xml", CONTENT_TYPES),
            ("_rels/.rels", ROOT_RELS),
            ("xl/workbook.xml", WORKBOOK),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
        ] {
            zip.start_file(name, opts)?;
            zip.write_all(body.as_bytes())?;
        }
        zip.start_file("xl/worksheets/sheet1.xml", opts.large_file(true))?;
        zip.write_all(
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        )?;
        Ok(XlsxWriter { zip, row: 0 })
    }

    pub fn write_row(&mut self, cells: &[Cell<'_>]) -> std::io::Result<()> {
        self.row += 1;
        let mut s = String::with_capacity(64 * cells.len());
        s.push_str(&format!("<row r=\"{}\">", self.row));
        for c in cells {
            match c {
                Cell::Text(t) => {
                    s.push_str("<c t=\"inlineStr\"><is><t>");
                    escape_into(&mut s, t);
                    s.push_str("</t></is></c>");
                }
                Cell::Number(n) => s.push_str(&format!("<c><v>{n}</v></c>")),
            }
        }
        s.push_str("</row>");
        self.zip.write_all(s.as_bytes())
    }

    pub fn finish(mut self) -> zip::result::ZipResult<W> {
        self.zip.write_all(b"</sheetData></worksheet>")?;
        self.zip.finish()
    }
}

fn escape_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // XML 1.0 forbids most control characters; drop them rather than emit a broken file.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {}
            c => out.push(c),
        }
    }
}
