use super::*;
use clearing::write_canonical_csv;
use proptest::prelude::*;
use recon::scenario::{generate, ScenarioRates};

const HEADER: &str = clearing::CANONICAL_HEADER;

fn file(rows: &[&str]) -> Vec<u8> {
    let mut s = format!("{HEADER}\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s.into_bytes()
}

const GOOD: &str = "2026-11-25,898310048990001,10000001,000001,000123,331234567890,A12345,purchase,622202******1234,128.50,0.77,127.73,2026-11-25 10:00:00,CNY,card,";
const VOID: &str = "2026-11-25,898310048990001,10000001,000001,000124,331234567891,,void,622202******1234,128.50,0.77,-127.73,2026-11-25 10:05:00,CNY,card,";

#[test]
fn a_good_file_imports_every_row() {
    let (summary, rows) = import(&file(&[GOOD, VOID]), &Profile::canonical(), None).unwrap();
    assert!(rows.bad_rows.is_empty(), "{:?}", rows.bad_rows);
    assert_eq!((summary.rows, summary.bad_rows, summary.lines), (2, 0, 3));
    let r = &rows.rows[0];
    assert_eq!((r.line, r.amount.fen(), r.fee.fen(), r.net_amount_fen), (2, 12_850, 77, Some(12_773)));
    assert_eq!(r.card.unwrap().last4(), "1234");
    assert_eq!(r.txn_time.unwrap().to_rfc3339(), "2026-11-25T02:00:00+00:00");
    assert_eq!(rows.rows[1].kind, TxnKind::Void);
    assert_eq!(summary.sha256, clearing::sha256_of(&file(&[GOOD, VOID])[..]).unwrap());
    assert_eq!(summary.sha256_hex().len(), 64);
    let record = rows.rows[0].clone().into_recon(recon::ClearingFileId(7));
    assert_eq!((record.file.0, record.line, record.card.unwrap().last4()), (7, 2, "1234"));
}

#[test]
fn a_third_decimal_is_refused_with_its_line() {
    let bad = GOOD.replace("128.50,0.77,127.73", "12.345,0.77,11.575");
    let (_, rows) = import(&file(&[GOOD, &bad, GOOD]), &Profile::canonical(), None).unwrap();
    assert_eq!(rows.rows.len(), 2);
    assert_eq!(rows.bad_rows.len(), 1);
    let b = &rows.bad_rows[0];
    assert_eq!(b.line, 3);
    assert_eq!(b.errors[0].column, "amount");
    assert_eq!(b.errors[0].value, "12.345");
    assert!(b.to_string().starts_with("line 3: column amount: \"12.345\""), "{b}");
}

#[test]
fn bad_amount_forms_are_refused_never_rounded() {
    for bad in ["abc", "1,00.00", "-5.00", "1.2.3", "1e3"] {
        let row = GOOD.replace("128.50,0.77,127.73", &format!("\"{bad}\",0.77,127.73"));
        let (_, rows) = import(&file(&[&row]), &Profile::canonical(), None).unwrap();
        assert_eq!(bad_lines(&rows).first(), Some(&(2, "amount".to_owned())), "{bad}");
    }
    let grouped = GOOD.replace("128.50,0.77,127.73", "\"1,128.50\",0.77,1127.73");
    let (_, rows) = import(&file(&[&grouped]), &Profile::canonical(), None).unwrap();
    assert_eq!(rows.rows[0].amount.fen(), 112_850);
}

#[test]
fn a_missing_column_fails_on_the_header_before_any_row() {
    let text = format!("{}\n{GOOD}\n", HEADER.replace(",rrn", ""));
    let err = import(text.as_bytes(), &Profile::canonical(), None).unwrap_err();
    assert!(matches!(&err, FileError::MissingColumn { line: 1, column } if column == "rrn"), "{err}");
}

#[test]
fn gbk_bytes_under_a_utf8_profile_name_the_line() {
    let (gbk, _, _) = encoding_rs::GBK.encode("测试商户");
    let mut bytes = file(&[GOOD]);
    let mut bad = GOOD.replace(",card,", ",card,X").into_bytes();
    bad.extend_from_slice(&gbk);
    bytes.extend_from_slice(&bad);
    bytes.push(b'\n');
    let (_, rows) = import(&bytes, &Profile::canonical(), None).unwrap();
    assert_eq!(rows.bad_rows.len(), 1);
    assert_eq!(rows.bad_rows[0].line, 3);
    assert!(rows.bad_rows[0].errors[0].reason.contains("not valid utf-8"));
}

#[test]
fn settlement_date_must_agree_with_the_date_given() {
    let (_, rows) = import(&file(&[GOOD]), &Profile::canonical(), Some("2026-11-24")).unwrap();
    let e = &rows.bad_rows[0].errors[0];
    assert_eq!((rows.bad_rows[0].line, e.column.as_str()), (2, "settlement_date"));
    assert!(e.reason.contains("disagrees with --date 2026-11-24"));
    let (_, rows) = import(&file(&[GOOD]), &Profile::canonical(), Some("2026-11-25")).unwrap();
    assert_eq!(rows.rows.len(), 1);
}

#[test]
fn a_clear_card_number_becomes_bin_last4_and_token() {
    let row = GOOD.replace("622202******1234", "6222021234567890123");
    let (_, rows) = import(&file(&[&row]), &Profile::canonical(), None).unwrap();
    let card = rows.rows[0].card.unwrap();
    assert_eq!((card.bin(), card.last4(), rows.rows[0].card_token.as_ref().map(String::len)), ("622202", "0123", Some(64)));
    assert!(!format!("{:?}", rows.rows[0]).contains("6222021234567890123"));
    let row = GOOD.replace("622202******1234", "62220212345678901x3");
    let (_, rows) = import(&file(&[&row]), &Profile::canonical(), None).unwrap();
    assert!(!rows.bad_rows[0].to_string().contains("62220212345678901x3"));
}

#[test]
fn net_amount_must_follow_amount_fee_and_kind() {
    let row = VOID.replace("-127.73", "127.73");
    let (_, rows) = import(&file(&[&row]), &Profile::canonical(), None).unwrap();
    assert_eq!(bad_lines(&rows), vec![(2, "net_amount".to_owned())]);
}

#[test]
fn an_overlong_line_refuses_the_file() {
    let long = "x".repeat(clearing::LINE_BYTES_MAX + 10);
    let err = import(file(&[GOOD, &long]).as_slice(), &Profile::canonical(), None).unwrap_err();
    assert!(matches!(err, FileError::LineTooLong { line: 3, .. }), "{err}");
}

#[test]
fn generated_records_survive_a_round_trip_through_a_canonical_file() {
    let s = generate(5, 500, &ScenarioRates::default());
    let card_d: Vec<_> = s.clearing.iter().filter(|r| r.file == recon::ClearingFileId(1)).cloned().collect();
    let mut bytes = Vec::new();
    write_canonical_csv(&mut bytes, &card_d, chrono_tz::Asia::Shanghai).unwrap();
    let (summary, rows) = import(&bytes, &Profile::canonical(), Some("2026-11-25")).unwrap();
    assert!(rows.bad_rows.is_empty(), "{:?}", rows.bad_rows.first());
    assert_eq!(summary.rows as usize, card_d.len());
    let back: Vec<_> = rows.rows.into_iter().map(|r| r.into_recon(recon::ClearingFileId(1))).collect();
    assert_eq!(back, card_d);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(tail in proptest::collection::vec(any::<u8>(), 0..600), with_header: bool) {
        let mut bytes = if with_header { format!("{HEADER}\n").into_bytes() } else { Vec::new() };
        bytes.extend_from_slice(&tail);
        let fixed = Profile::from_toml(super::custom::GBK_FIXED_PROFILE).unwrap();
        for profile in [Profile::canonical(), Profile::wechatpay_tradebill(), fixed] {
            let _ = import(&bytes, &profile, None);
            let _ = import(&bytes, &profile, Some("2026-11-25"));
        }
    }

    #[test]
    fn mutated_good_rows_never_panic(pos in 0usize..200, byte: u8) {
        let mut row = GOOD.as_bytes().to_vec();
        let pos = pos % row.len();
        row[pos] = byte;
        let mut bytes = file(&[]);
        bytes.extend_from_slice(&row);
        let _ = import(&bytes, &Profile::canonical(), None);
    }
}

/// A sink that refuses the file after its first rows: the parse stops within a progress step
/// instead of reading the rest (a refused import does not parse a large file to its end).
#[test]
fn a_sink_that_refuses_stops_the_parse() {
    struct Refusing {
        rows: u64,
    }
    impl clearing::RowSink for Refusing {
        fn row(&mut self, _: clearing::ClearingRow) {
            self.rows += 1;
        }
        fn bad_row(&mut self, _: clearing::BadRow) {}
        fn keep_going(&self) -> bool {
            self.rows == 0
        }
    }
    let rows: Vec<String> = (0..40_000).map(|i| GOOD.replace("000123", &format!("{:06}", i + 1))).collect();
    let bytes = file(&rows.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(bytes.len() as u64 > 3 * clearing::PROGRESS_EVERY_BYTES);
    let key = key();
    let options = ParseOptions { settlement_date: None, card_key: &key };
    let mut sink = Refusing { rows: 0 };
    match parse(&bytes[..], &Profile::canonical(), &options, &mut sink) {
        Err(FileError::Stopped { line }) => {
            assert!(line < 40_000 / 2, "stopped at line {line}");
            assert!(sink.rows < 40_000 / 2, "{} rows parsed", sink.rows);
        }
        other => panic!("expected a stop, got {other:?}"),
    }
}
