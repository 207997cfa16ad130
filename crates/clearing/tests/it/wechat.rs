use super::*;

const HEADER_27: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const HEADER_20: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注";
const SUMMARY_HEADER: &str = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

fn tick(values: &[&str]) -> String {
    values.iter().map(|v| format!("`{v}")).collect::<Vec<_>>().join(",")
}

fn bill(summary: &[&str]) -> Vec<u8> {
    let rows = [
        tick(&["2026-11-25 10:00:00", "wx1", "1900000001", "1900000109", "10000001", "4200001", "WX001", "oUser", "MICROPAY", "SUCCESS", "CMB_CREDIT", "CNY", "100.00", "0.00", "0", "0", "0.00", "0.00", "", "", "咖啡", "", "0.60000", "0.60%", "100.00", "0.00", ""]),
        tick(&["2026-11-25 11:00:00", "wx1", "1900000001", "1900000109", "10000001", "4200002", "WX002", "oUser", "MICROPAY", "REFUND", "CMB_CREDIT", "CNY", "0.00", "0.00", "5000001", "RF002", "30.00", "0.00", "ORIGINAL", "SUCCESS", "咖啡", "", "-0.18000", "0.60%", "0.00", "30.00", ""]),
        tick(&["2026-11-25 12:00:00", "wx1", "1900000001", "1900000109", "", "4200003", "WX003", "oUser", "NATIVE", "REVOKED", "CMB_CREDIT", "CNY", "20.05", "0.00", "0", "0", "0.00", "0.00", "", "", "茶", "", "0.12030", "0.60%", "20.05", "0.00", ""]),
    ];
    let mut s = format!("{HEADER_27}\n");
    for r in rows {
        s.push_str(&r);
        s.push_str("\r\n");
    }
    s.push_str(SUMMARY_HEADER);
    s.push('\n');
    s.push_str(&tick(summary));
    s.push('\n');
    s.into_bytes()
}

const TOTALS: [&str; 7] = ["3", "120.05", "30.00", "0.00", "0.54030", "120.05", "30.00"];

#[test]
fn a_trade_bill_imports_with_states_refs_and_fees() {
    let (summary, rows) = import(&bill(&TOTALS), &Profile::wechatpay_tradebill(), Some("2026-11-25")).unwrap();
    assert!(rows.bad_rows.is_empty(), "{:?}", rows.bad_rows);
    assert!(summary.totals_checked);
    let [pay, refund, revoked] = &rows.rows[..] else { panic!("three rows expected, got {}", rows.rows.len()) };
    assert_eq!((pay.kind, pay.amount.fen(), pay.fee.fen(), pay.external_ref.as_deref()), (TxnKind::Purchase, 10_000, 60, Some("WX001")));
    assert_eq!(pay.terminal_id.as_ref().unwrap().as_str(), "10000001");
    assert_eq!(pay.sub_merchant_id.as_deref(), Some("1900000109"));
    assert_eq!(pay.channel, domain::Channel::Wechat);
    assert_eq!((refund.kind, refund.amount.fen(), refund.fee.fen()), (TxnKind::Refund, 3_000, 18));
    assert_eq!((refund.external_ref.as_deref(), refund.original_external_ref.as_deref()), (Some("RF002"), Some("WX002")));
    // 0.12030 yuan rounds half up to 0.12; 0.60000 is 0.60.
    assert_eq!((revoked.kind, revoked.fee.fen(), revoked.terminal_id.is_none()), (TxnKind::Void, 12, true));
    assert_eq!(revoked.line, 4);
}

#[test]
fn fees_round_half_up_to_fen() {
    let mut text = String::from_utf8(bill(&["3", "120.05", "30.00", "0.00", "0.54530", "120.05", "30.00"])).unwrap();
    text = text.replace("`0.60000", "`0.60500");
    let (_, rows) = import(text.as_bytes(), &Profile::wechatpay_tradebill(), Some("2026-11-25")).unwrap();
    assert_eq!(rows.rows[0].fee.fen(), 61);
}

#[test]
fn totals_that_do_not_add_up_refuse_the_file_with_both_figures() {
    let mut wrong = TOTALS;
    wrong[1] = "121.05";
    let err = import(&bill(&wrong), &Profile::wechatpay_tradebill(), Some("2026-11-25")).unwrap_err();
    let FileError::Totals { line, what, file_figure, computed } = &err else { panic!("{err}") };
    assert_eq!((*line, what.as_str(), file_figure.as_str(), computed.as_str()), (6, "应结订单总金额", "121.05", "120.05"));
    assert!(err.to_string().contains("121.05") && err.to_string().contains("120.05"));
    let mut wrong = TOTALS;
    wrong[0] = "4";
    assert!(matches!(import(&bill(&wrong), &Profile::wechatpay_tradebill(), None), Err(FileError::Totals { .. })));
}

#[test]
fn a_bill_without_its_summary_is_refused() {
    let text = String::from_utf8(bill(&TOTALS)).unwrap();
    let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    assert!(matches!(import(cut.as_bytes(), &Profile::wechatpay_tradebill(), None), Err(FileError::TotalsMissing)));
}

#[test]
fn the_twenty_column_success_variant_is_accepted() {
    let row = tick(&["2026-11-25 10:00:00", "wx1", "1900000001", "1900000109", "10000001", "4200001", "WX001", "oUser", "MICROPAY", "SUCCESS", "CMB_CREDIT", "CNY", "100.00", "0.00", "咖啡", "", "0.60000", "0.60%", "100.00", ""]);
    let text = format!("{HEADER_20}\n{row}\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额\n{}\n", tick(&["1", "100.00", "0.00", "0.00", "0.60000", "100.00"]));
    let (summary, rows) = import(text.as_bytes(), &Profile::wechatpay_tradebill(), None).unwrap();
    assert!(rows.bad_rows.is_empty(), "{:?}", rows.bad_rows);
    assert_eq!(rows.rows[0].settlement_date.to_string(), "2026-11-25");
    assert_eq!(summary.rows, 1);
}

#[test]
fn an_unknown_trade_state_is_a_bad_row() {
    let text = String::from_utf8(bill(&TOTALS)).unwrap().replace("`REVOKED", "`CLOSED");
    let (_, rows) = import(text.as_bytes(), &Profile::wechatpay_tradebill(), None).unwrap();
    assert_eq!(bad_lines(&rows), vec![(4, "交易状态".to_owned())]);
}
