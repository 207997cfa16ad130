use super::*;

pub const GBK_FIXED_PROFILE: &str = r#"
name = "acquirer-fixed-gbk"
encoding = "gbk"
layout = "fixed"
header_row = 1
skip_trailing_rows = 1
timezone = "Asia/Shanghai"
amount_unit = "fen"

[columns]
settlement_date = { column = [0, 8], format = "%Y%m%d" }
merchant_id = [8, 15]
terminal_id = [23, 8]
batch_no = [31, 6]
stan = [37, 6]
rrn = [43, 12]
card = [55, 19]
amount = [74, 12]
txn_time = { column = [86, 14], format = "%Y%m%d%H%M%S" }
kind = { column = [100, 8], map = { "消费" = "purchase", "消费撤销" = "void", "退货" = "refund" } }
"#;

/// One fixed-width line; `kind` is Chinese, padded to 8 bytes in GBK (2 bytes per character).
fn line(stan: &str, amount_fen: &str, kind_zh: &str) -> Vec<u8> {
    let (kind, _, _) = encoding_rs::GBK.encode(kind_zh);
    let mut l = format!(
        "2026112589831004899000110000001000001{stan}331234{stan}622202******1234   {amount_fen:0>12}20261125103000"
    )
    .into_bytes();
    l.extend_from_slice(&kind);
    l.extend(std::iter::repeat_n(b' ', 8 - kind.len()));
    l.push(b'\n');
    l
}

fn gbk_file(lines: &[Vec<u8>]) -> Vec<u8> {
    let (header, _, _) = encoding_rs::GBK.encode("清算日期 商户编号 终端编号 批次号 凭证号 参考号 卡号 交易金额 交易时间 交易类型\n");
    let mut bytes = header.into_owned();
    for l in lines {
        bytes.extend_from_slice(l);
    }
    let (trailer, _, _) = encoding_rs::GBK.encode("合计 2 笔\n");
    bytes.extend_from_slice(&trailer);
    bytes
}

#[test]
fn a_gbk_fixed_width_file_imports_through_a_toml_profile() {
    let profile = Profile::from_toml(GBK_FIXED_PROFILE).unwrap();
    let bytes = gbk_file(&[line("000123", "12850", "消费"), line("000124", "12850", "消费撤销")]);
    let (summary, rows) = import(&bytes, &profile, None).unwrap();
    assert!(rows.bad_rows.is_empty(), "{:?}", rows.bad_rows);
    assert_eq!(summary.rows, 2);
    let [purchase, void] = &rows.rows[..] else { panic!() };
    assert_eq!((purchase.kind, purchase.amount.fen(), purchase.stan.unwrap().get()), (TxnKind::Purchase, 12_850, 123));
    assert_eq!((void.kind, void.line), (TxnKind::Void, 3));
    assert_eq!(purchase.settlement_date.to_string(), "2026-11-25");
    assert_eq!(purchase.txn_time.unwrap().to_rfc3339(), "2026-11-25T02:30:00+00:00");
    assert_eq!(purchase.merchant_id.as_ref().unwrap().as_str(), "898310048990001");
}

#[test]
fn an_unmapped_kind_and_a_bad_amount_name_their_line_and_field() {
    let profile = Profile::from_toml(GBK_FIXED_PROFILE).unwrap();
    let bytes = gbk_file(&[line("000123", "12850", "消费"), line("000124", "12x50", "预授权")]);
    let (_, rows) = import(&bytes, &profile, None).unwrap();
    assert_eq!(bad_lines(&rows), vec![(3, "[100, 8]".to_owned()), (3, "[74, 12]".to_owned())]);
}

#[test]
fn a_gbk_csv_profile_with_header_names() {
    let profile = Profile::from_toml(
        r#"
name = "acquirer-statement-gbk"
encoding = "gbk"
layout = "csv"
delimiter = ","
header_row = 1
skip_trailing_rows = 1
amount_unit = "yuan"

[columns]
merchant_id = "商户编号"
terminal_id = "终端编号"
txn_time = { column = "交易时间", format = "%Y%m%d%H%M%S" }
batch_no = "批次号"
stan = "凭证号"
rrn = "参考号"
card = "卡号"
amount = "交易金额"
fee = "手续费"
settlement_date = { column = "清算日期", format = "%Y%m%d" }
kind = { column = "交易类型", map = { "消费" = "purchase", "消费撤销" = "void", "退货" = "refund" } }
"#,
    )
    .unwrap();
    let text = "商户编号,终端编号,交易时间,批次号,凭证号,参考号,卡号,交易金额,手续费,清算日期,交易类型\n\
                898310048990001,10000001,20261125103000,000001,000123,331234000123,622202******1234,128.50,0.77,20261125,消费\n\
                合计,1,128.50\n";
    let (bytes, _, _) = encoding_rs::GBK.encode(text);
    let (_, rows) = import(&bytes, &profile, None).unwrap();
    assert!(rows.bad_rows.is_empty(), "{:?}", rows.bad_rows);
    assert_eq!((rows.rows.len(), rows.rows[0].fee.fen()), (1, 77));
    let missing = text.replace("参考号", "参考编号");
    let (bytes, _, _) = encoding_rs::GBK.encode(&missing);
    let err = import(&bytes, &profile, None).unwrap_err();
    assert!(matches!(&err, FileError::MissingColumn { line: 1, column } if column == "参考号"), "{err}");
}

#[test]
fn profiles_are_checked_when_loaded() {
    for (bad, why) in [
        ("name = \"x\"\nencoding = \"latin1\"\n[columns]\namount = \"a\"\nkind = \"k\"", "encoding"),
        ("name = \"x\"\n[columns]\namount = \"a\"", "kind"),
        ("name = \"x\"\n[columns]\namount = \"a\"\nkind = \"k\"\nshoe_size = \"s\"", "shoe_size"),
        ("name = \"x\"\nlayout = \"fixed\"\n[columns]\namount = \"a\"\nkind = \"k\"", "does not fit"),
    ] {
        let err = Profile::from_toml(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{err} lacks {why}");
    }
}
