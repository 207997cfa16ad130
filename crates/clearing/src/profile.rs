use std::collections::BTreeMap;

use chrono_tz::Tz;
use domain::{Channel, Currency};
use serde::Deserialize;

use crate::ProfileError;

/// The fields a clearing row can carry. The first sixteen are the `canonical` columns and the
/// names a TOML profile maps; the rest only the WeChat Pay bill has.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Field {
    SettlementDate,
    MerchantId,
    TerminalId,
    BatchNo,
    Stan,
    Rrn,
    AuthCode,
    Kind,
    Card,
    Amount,
    Fee,
    NetAmount,
    TxnTime,
    Currency,
    Channel,
    ExternalRef,
    /// WeChat Pay: 特约商户号 (WeChat's own sub-merchant id).
    SubMerchantId,
    /// WeChat Pay: 交易状态.
    TradeState,
    /// WeChat Pay: 应结订单金额.
    SettleAmount,
    /// WeChat Pay: 退款金额.
    RefundAmount,
    /// WeChat Pay: 申请退款金额.
    RequestedRefundAmount,
    /// WeChat Pay: 商户退款单号.
    RefundRef,
}

impl Field {
    /// How many fields there are: `field as usize` is below it.
    pub const COUNT: usize = Field::RefundRef as usize + 1;

    pub const CANONICAL: [Field; 16] = [
        Field::SettlementDate,
        Field::MerchantId,
        Field::TerminalId,
        Field::BatchNo,
        Field::Stan,
        Field::Rrn,
        Field::AuthCode,
        Field::Kind,
        Field::Card,
        Field::Amount,
        Field::Fee,
        Field::NetAmount,
        Field::TxnTime,
        Field::Currency,
        Field::Channel,
        Field::ExternalRef,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::SettlementDate => "settlement_date",
            Field::MerchantId => "merchant_id",
            Field::TerminalId => "terminal_id",
            Field::BatchNo => "batch_no",
            Field::Stan => "stan",
            Field::Rrn => "rrn",
            Field::AuthCode => "auth_code",
            Field::Kind => "kind",
            Field::Card => "card",
            Field::Amount => "amount",
            Field::Fee => "fee",
            Field::NetAmount => "net_amount",
            Field::TxnTime => "txn_time",
            Field::Currency => "currency",
            Field::Channel => "channel",
            Field::ExternalRef => "external_ref",
            Field::SubMerchantId => "sub_merchant_id",
            Field::TradeState => "trade_state",
            Field::SettleAmount => "settle_amount",
            Field::RefundAmount => "refund_amount",
            Field::RequestedRefundAmount => "requested_refund_amount",
            Field::RefundRef => "refund_ref",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        Field::CANONICAL.into_iter().find(|f| f.name() == s)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TextEncoding {
    Utf8,
    Gbk,
    Gb18030,
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Gbk => "gbk",
            TextEncoding::Gb18030 => "gb18030",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    Csv { delimiter: u8 },
    Fixed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AmountUnit {
    Yuan,
    Fen,
}

/// Where a field's value is on the line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ColumnSource {
    /// Header name (csv with a header row).
    Name(String),
    /// 1-based field number (csv).
    Index(usize),
    /// 0-based byte offset and width in the file's encoding (fixed-width).
    Span { start: usize, width: usize },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ColumnSpec {
    pub source: ColumnSource,
    /// chrono format for dates and times.
    pub format: Option<String>,
    /// File value → poslens value, applied before parsing (e.g. `消费` → `purchase`).
    pub map: BTreeMap<String, String>,
    /// A header lacking an optional column is accepted (the WeChat bill's two variants).
    pub required: bool,
}

impl ColumnSpec {
    fn named(name: &str) -> ColumnSpec {
        ColumnSpec { source: ColumnSource::Name(name.to_owned()), format: None, map: BTreeMap::new(), required: true }
    }

    fn optional(name: &str) -> ColumnSpec {
        ColumnSpec { required: false, ..ColumnSpec::named(name) }
    }
}

/// Rows that need their own rules beyond column mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dialect {
    Plain,
    /// Backtick-prefixed values, 交易状态, 5-decimal fees and a summary section.
    WechatTradebill,
}

/// How to read one kind of clearing file.
#[derive(Clone, PartialEq, Debug)]
pub struct Profile {
    pub name: String,
    pub encoding: TextEncoding,
    pub layout: Layout,
    /// 1-based line of the header; 0 = no header.
    pub header_row: u64,
    /// Lines at the end that are not rows (e.g. a totals line).
    pub skip_trailing_rows: usize,
    pub timezone: Tz,
    pub amount_unit: AmountUnit,
    pub columns: Vec<(Field, ColumnSpec)>,
    /// Channel of rows that have no channel column.
    pub channel: Channel,
    /// Currency of rows that have no currency column.
    pub currency: Currency,
    pub dialect: Dialect,
}

/// Trailing lines a profile may skip: the parser keeps them in memory until the end.
pub const SKIP_TRAILING_ROWS_MAX: usize = 16;

impl Profile {
    /// A built-in profile by name: `canonical` or `wechatpay-tradebill`.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        match name {
            "canonical" => Ok(Profile::canonical()),
            "wechatpay-tradebill" => Ok(Profile::wechatpay_tradebill()),
            other => Err(ProfileError::Unknown(other.to_owned())),
        }
    }

    /// UTF-8 CSV with the sixteen columns of CLEARING-FILES.md.
    pub fn canonical() -> Profile {
        let mut columns: Vec<(Field, ColumnSpec)> =
            Field::CANONICAL.into_iter().map(|f| (f, ColumnSpec::named(f.name()))).collect();
        for (field, spec) in &mut columns {
            match field {
                Field::TxnTime => spec.format = Some("%Y-%m-%d %H:%M:%S".to_owned()),
                Field::SettlementDate => spec.format = Some("%Y-%m-%d".to_owned()),
                _ => {}
            }
        }
        Profile {
            name: "canonical".to_owned(),
            encoding: TextEncoding::Utf8,
            layout: Layout::Csv { delimiter: b',' },
            header_row: 1,
            skip_trailing_rows: 0,
            timezone: chrono_tz::Asia::Shanghai,
            amount_unit: AmountUnit::Yuan,
            columns,
            channel: Channel::Card,
            currency: Currency::CNY,
            dialect: Dialect::Plain,
        }
    }

    /// The WeChat Pay merchant trade bill (`bill_type=ALL`, 27 columns, or the 20-column
    /// `SUCCESS` variant).
    pub fn wechatpay_tradebill() -> Profile {
        let mut time = ColumnSpec::named("交易时间");
        time.format = Some("%Y-%m-%d %H:%M:%S".to_owned());
        let columns = vec![
            (Field::TxnTime, time),
            (Field::SubMerchantId, ColumnSpec::named("特约商户号")),
            (Field::TerminalId, ColumnSpec::named("设备号")),
            (Field::ExternalRef, ColumnSpec::named("商户订单号")),
            (Field::TradeState, ColumnSpec::named("交易状态")),
            (Field::Currency, ColumnSpec::named("货币种类")),
            (Field::SettleAmount, ColumnSpec::named("应结订单金额")),
            (Field::RefundRef, ColumnSpec::optional("商户退款单号")),
            (Field::RefundAmount, ColumnSpec::optional("退款金额")),
            (Field::Fee, ColumnSpec::named("手续费")),
            (Field::Amount, ColumnSpec::named("订单金额")),
            (Field::RequestedRefundAmount, ColumnSpec::optional("申请退款金额")),
        ];
        Profile {
            name: "wechatpay-tradebill".to_owned(),
            encoding: TextEncoding::Utf8,
            layout: Layout::Csv { delimiter: b',' },
            header_row: 1,
            skip_trailing_rows: 0,
            timezone: chrono_tz::Asia::Shanghai,
            amount_unit: AmountUnit::Yuan,
            columns,
            channel: Channel::Wechat,
            currency: Currency::CNY,
            dialect: Dialect::WechatTradebill,
        }
    }

    /// A user-defined profile (CLEARING-FILES.md, "User-defined profiles").
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        let encoding = match raw.encoding.as_deref().unwrap_or("utf-8").to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => TextEncoding::Utf8,
            "gbk" => TextEncoding::Gbk,
            "gb18030" => TextEncoding::Gb18030,
            other => return Err(ProfileError::Invalid(format!("encoding must be utf-8, gbk or gb18030, got {other:?}"))),
        };
        let layout = match raw.layout.as_deref().unwrap_or("csv") {
            "csv" => {
                let d = raw.delimiter.as_deref().unwrap_or(",");
                let b = d.as_bytes();
                if b.len() != 1 || !b[0].is_ascii() || b[0] == b'"' || b[0] == b'\n' {
                    return Err(ProfileError::Invalid(format!("delimiter must be one ASCII character, got {d:?}")));
                }
                Layout::Csv { delimiter: b[0] }
            }
            "fixed" => Layout::Fixed,
            other => return Err(ProfileError::Invalid(format!("layout must be csv or fixed, got {other:?}"))),
        };
        let skip_trailing_rows = raw.skip_trailing_rows.unwrap_or(0);
        if skip_trailing_rows > SKIP_TRAILING_ROWS_MAX {
            return Err(ProfileError::Invalid(format!("skip_trailing_rows must be at most {SKIP_TRAILING_ROWS_MAX}")));
        }
        let tz_name = raw.timezone.as_deref().unwrap_or("Asia/Shanghai");
        let timezone: Tz = tz_name.parse().map_err(|_| ProfileError::Invalid(format!("unknown time zone {tz_name:?}")))?;
        let amount_unit = match raw.amount_unit.as_deref().unwrap_or("yuan") {
            "yuan" => AmountUnit::Yuan,
            "fen" => AmountUnit::Fen,
            other => return Err(ProfileError::Invalid(format!("amount_unit must be yuan or fen, got {other:?}"))),
        };
        let channel = match raw.channel.as_deref() {
            None => Channel::Card,
            Some(c) => Channel::parse(c).map_err(|e| ProfileError::Invalid(e.to_string()))?,
        };
        let header_row = raw.header_row.unwrap_or(1);
        let mut columns = Vec::new();
        for (name, column) in raw.columns {
            let field = Field::parse(&name).ok_or_else(|| ProfileError::UnknownField(name.clone()))?;
            let (source, format, map) = match column {
                RawColumn::Source(s) => (s, None, BTreeMap::new()),
                RawColumn::Table { column, format, map } => (column, format, map.unwrap_or_default()),
            };
            let source = match (source, layout) {
                (RawSource::Name(n), Layout::Csv { .. }) if header_row > 0 => ColumnSource::Name(n),
                (RawSource::Index(i), Layout::Csv { .. }) if i >= 1 => ColumnSource::Index(i as usize),
                (RawSource::Span([start, width]), Layout::Fixed) if width > 0 => {
                    ColumnSource::Span { start: start as usize, width: width as usize }
                }
                (s, _) => {
                    return Err(ProfileError::Column {
                        field: name,
                        reason: format!(
                            "{s:?} does not fit: csv takes a header name (with header_row > 0) or a 1-based number, fixed takes [start, width]"
                        ),
                    })
                }
            };
            columns.push((field, ColumnSpec { source, format, map, required: true }));
        }
        for needed in [Field::Amount, Field::Kind] {
            if !columns.iter().any(|(f, _)| *f == needed) {
                return Err(ProfileError::Column { field: needed.name().to_owned(), reason: "is required".to_owned() });
            }
        }
        Ok(Profile {
            name: raw.name,
            encoding,
            layout,
            header_row,
            skip_trailing_rows,
            timezone,
            amount_unit,
            columns,
            channel,
            currency: Currency::CNY,
            dialect: Dialect::Plain,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    encoding: Option<String>,
    layout: Option<String>,
    delimiter: Option<String>,
    header_row: Option<u64>,
    skip_trailing_rows: Option<usize>,
    timezone: Option<String>,
    amount_unit: Option<String>,
    channel: Option<String>,
    columns: BTreeMap<String, RawColumn>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum RawSource {
    Name(String),
    Index(u64),
    Span([u64; 2]),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Source(RawSource),
    Table { column: RawSource, format: Option<String>, map: Option<BTreeMap<String, String>> },
}
