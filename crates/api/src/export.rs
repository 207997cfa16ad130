//! Export of any transaction query as CSV (UTF-8 with BOM, or GBK) or XLSX, streamed with
//! bounded memory. Same parsing and scope as the list, so an export can never show more than
//! the pages would.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Timelike};
use chrono::Utc;
use store::{AuditRepo, NewAuditEvent, TxnRepo, TxnRow, EXPORT_ROWS_MAX};
use tokio::sync::mpsc;

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::txns::{parse_list_query, FILTER_PARAMS};
use crate::xlsx::{Cell, XlsxWriter};
use crate::AppState;

const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the export thread and the socket.
const CHANNEL_CHUNKS: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Xlsx,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Zh,
    En,
}

fn headers(lang: Lang, tz: &str) -> Vec<String> {
    match lang {
        Lang::Zh => vec![
            format!("交易时间({tz})"), "清算日期".into(), "商户号".into(), "终端号".into(), "批次号".into(), "凭证号".into(),
            "参考号".into(), "授权码".into(), "交易类型".into(), "支付渠道".into(), "卡号".into(), "金额(元)".into(), "币种".into(),
            "应答码".into(), "交易状态".into(), "渠道订单号".into(), "交易编号".into(),
        ],
        Lang::En => vec![
            format!("txn_time ({tz})"), "settlement_date".into(), "merchant_id".into(), "terminal_id".into(), "batch_no".into(),
            "stan".into(), "rrn".into(), "auth_code".into(), "kind".into(), "channel".into(), "card (masked)".into(),
            "amount (yuan)".into(), "currency".into(), "response_code".into(), "status".into(), "external_ref".into(), "id".into(),
        ],
    }
}

fn cells(row: &TxnRow, lang: Lang) -> (Vec<String>, usize) {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let (kind, channel, status) = match lang {
        Lang::Zh => (row.kind.zh().to_owned(), row.channel.zh().to_owned(), row.status.zh().to_owned()),
        Lang::En => (row.kind.as_str().to_owned(), row.channel.as_str().to_owned(), row.status.as_str().to_owned()),
    };
    let v = vec![
        row.local_time.format("%Y-%m-%d %H:%M:%S").to_string(),
        row.settlement_date.to_string(),
        row.merchant_id.to_string(),
        opt(row.terminal_id.as_ref().map(|t| t.to_string())),
        opt(row.batch_no.map(|b| b.to_string())),
        opt(row.stan.map(|s| s.to_string())),
        opt(row.rrn.as_ref().map(|r| r.to_string())),
        opt(row.auth_code.as_ref().map(|a| a.to_string())),
        kind,
        channel,
        opt(row.card.as_ref().map(|c| c.masked.clone())),
        row.amount.to_string(),
        row.currency.to_string(),
        row.response_code.to_string(),
        status,
        opt(row.external_ref.clone()),
        row.id.to_string(),
    ];
    // Index of the amount column, written as a number in XLSX.
    (v, 11)
}

fn csv_field(out: &mut String, s: &str) {
    // Spreadsheet formula injection: a leading = + - @ is made inert.
    let risky = s.starts_with(['=', '+', '-', '@']);
    if risky || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if risky {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// One CSV row written straight into `out`: no per-cell strings, no strftime.
fn csv_row(out: &mut String, row: &TxnRow, lang: Lang) {
    use std::fmt::Write as _;
    let t = row.local_time;
    let _ = write!(out, "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{},{},", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second(), row.settlement_date, row.merchant_id);
    let opt = |out: &mut String, v: Option<&dyn std::fmt::Display>| {
        if let Some(v) = v {
            let start = out.len();
            let _ = write!(out, "{v}");
            // Identifiers never need quoting, but a value from outside (external_ref) might.
            if out[start..].contains([',', '"', '\n', '\r']) || out[start..].starts_with(['=', '+', '-', '@']) {
                let raw = out.split_off(start);
                csv_field(out, &raw);
            }
        }
        out.push(',');
    };
    opt(out, row.terminal_id.as_ref().map(|v| v as &dyn std::fmt::Display));
    opt(out, row.batch_no.as_ref().map(|v| v as &dyn std::fmt::Display));
    opt(out, row.stan.as_ref().map(|v| v as &dyn std::fmt::Display));
    opt(out, row.rrn.as_ref().map(|v| v as &dyn std::fmt::Display));
    opt(out, row.auth_code.as_ref().map(|v| v as &dyn std::fmt::Display));
    let (kind, channel, status) = match lang {
        Lang::Zh => (row.kind.zh(), row.channel.zh(), row.status.zh()),
        Lang::En => (row.kind.as_str(), row.channel.as_str(), row.status.as_str()),
    };
    let _ = write!(out, "{kind},{channel},");
    opt(out, row.card.as_ref().map(|c| &c.masked as &dyn std::fmt::Display));
    let _ = write!(out, "{},{},{},{status},", row.amount, row.currency, row.response_code);
    opt(out, row.external_ref.as_ref().map(|v| v as &dyn std::fmt::Display));
    out.push_str(row.id.as_str());
    out.push_str("\r\n");
}

fn csv_line(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// Sends chunks to the HTTP body; a dropped receiver (client gone) stops the export.
struct ChunkSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChunkSink {
    fn send(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.tx
            .blocking_send(Ok(Bytes::from(bytes)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

pub async fn export(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Response> {
    let mut allowed: Vec<&str> = FILTER_PARAMS.to_vec();
    allowed.extend(["format", "encoding", "lang"]);
    let p = Params::parse(uri.query(), &allowed)?;
    let format = match p.one("format")? {
        None | Some("csv") => Format::Csv,
        Some("xlsx") => Format::Xlsx,
        Some(o) => return Err(ApiError::bad_param("format", format!("format must be csv or xlsx, got {o:?}"))),
    };
    let gbk = match p.one("encoding")? {
        None | Some("utf-8") | Some("utf8") => false,
        Some("gbk") if format == Format::Csv => true,
        Some("gbk") => return Err(ApiError::bad_param("encoding", "encoding=gbk applies to CSV only")),
        Some(o) => return Err(ApiError::bad_param("encoding", format!("encoding must be utf-8 or gbk, got {o:?}"))),
    };
    let lang = match p.one("lang")? {
        None | Some("zh") => Lang::Zh,
        Some("en") => Lang::En,
        Some(o) => return Err(ApiError::bad_param("lang", format!("lang must be zh or en, got {o:?}"))),
    };
    let lq = parse_list_query(&state, &caller, &p, Utc::now()).await?;
    let tz = lq.clock.tz.name().to_owned();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    let store = state.store.clone();
    let actor = caller.actor();
    let query = lq.query;
    tokio::task::spawn_blocking(move || {
        let sink = ChunkSink { tx: tx.clone() };
        let result = match format {
            Format::Csv => export_csv(&store, &query, &sink, lang, &tz, gbk),
            Format::Xlsx => export_xlsx(&store, &query, &sink, lang, &tz),
        };
        match result {
            Ok(rows) => {
                let _ = store.append_audit(&NewAuditEvent {
                    actor,
                    action: "export_transactions".into(),
                    target: query.merchant_id.as_ref().map(|m| m.to_string()),
                    detail: Some(format!("{rows} rows")),
                    ip: None,
                    at: Utc::now(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "export stopped");
                let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
            }
        }
    });
    let (ct, ext) = match (format, gbk) {
        (Format::Csv, false) => ("text/csv; charset=utf-8", "csv"),
        (Format::Csv, true) => ("text/csv; charset=gbk", "csv"),
        (Format::Xlsx, _) => ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    };
    let filename = format!("transactions-{}.{ext}", Utc::now().format("%Y%m%d%H%M%S"));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [
            (header::CONTENT_TYPE, ct.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::HeaderName::from_static("x-export-rows-max"), EXPORT_ROWS_MAX.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn encode(s: &str, gbk: bool) -> Vec<u8> {
    if gbk {
        encoding_rs::GBK.encode(s).0.into_owned()
    } else {
        s.as_bytes().to_vec()
    }
}

fn export_csv(store: &store::SqliteStore, q: &store::TxnQuery, sink: &ChunkSink, lang: Lang, tz: &str, gbk: bool) -> Result<u64, String> {
    let mut buf = String::with_capacity(CHUNK_BYTES * 2);
    if !gbk {
        buf.push('\u{feff}');
    }
    csv_line(&mut buf, &headers(lang, tz));
    let outcome = store
        .export_txns(q, EXPORT_ROWS_MAX, &mut |row| {
            csv_row(&mut buf, row, lang);
            if buf.len() >= CHUNK_BYTES {
                sink.send(encode(&buf, gbk))?;
                buf.clear();
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if outcome.truncated {
        let note = match lang {
            Lang::Zh => format!("# 导出已截断：最多 {EXPORT_ROWS_MAX} 行，请缩小查询范围"),
            Lang::En => format!("# export truncated at {EXPORT_ROWS_MAX} rows; narrow the query"),
        };
        csv_line(&mut buf, &[note]);
    }
    if !buf.is_empty() {
        sink.send(encode(&buf, gbk)).map_err(|e| e.to_string())?;
    }
    Ok(outcome.rows)
}

fn export_xlsx(store: &store::SqliteStore, q: &store::TxnQuery, sink: &ChunkSink, lang: Lang, tz: &str) -> Result<u64, String> {
    let file = tempfile::tempfile().map_err(|e| e.to_string())?;
    let mut x = XlsxWriter::new(file).map_err(|e| e.to_string())?;
    let head = headers(lang, tz);
    x.write_row(&head.iter().map(|h| Cell::Text(h)).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    let outcome = store
        .export_txns(q, EXPORT_ROWS_MAX, &mut |row| {
            let (v, amount_col) = cells(row, lang);
            let mut cs: Vec<Cell<'_>> = v.iter().map(|s| Cell::Text(s)).collect();
            cs[amount_col] = Cell::Number(row.amount.fen() as f64 / 100.0);
            x.write_row(&cs)
        })
        .map_err(|e| e.to_string())?;
    let mut file = x.finish().map_err(|e| e.to_string())?;
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    loop {
        let n = file.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        sink.send(chunk[..n].to_vec()).map_err(|e| e.to_string())?;
    }
    let _ = std::io::sink().flush();
    Ok(outcome.rows)
}
