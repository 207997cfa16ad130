use std::fmt;

use crate::Amount;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be one of {allowed}, got {got:?}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub allowed: String,
    pub got: String,
}

/// Enums whose wire and storage names are the snake_case words of PRODUCT.md.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// In declaration order. The store keeps some values as their position here
            /// (compact chunks): add new values at the end, never reorder.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The variant whose word is exactly `b` (for compact encodings; no UTF-8 check).
            pub fn from_word_bytes(b: &[u8]) -> Option<Self> {
                $(if b == $word.as_bytes() {
                    return Some($name::$variant);
                })+
                None
            }

            pub fn parse(s: &str) -> Result<Self, ParseEnumError> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        what: $what,
                        allowed: [$($word),+].join(", "),
                        got: s.to_owned(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, ParseEnumError> {
                Self::parse(s)
            }
        }
    };
}

word_enum!(
    /// What a financial message asked for.
    TxnKind, "kind" {
        Purchase = "purchase",
        Void = "void",
        Refund = "refund",
        Preauth = "preauth",
        PreauthVoid = "preauth_void",
        PreauthCompletion = "preauth_completion",
        PreauthCompletionVoid = "preauth_completion_void",
        BalanceInquiry = "balance_inquiry",
    }
);

impl TxnKind {
    /// Kinds that must name an original transaction.
    pub fn needs_original(self) -> bool {
        matches!(self, TxnKind::Void | TxnKind::Refund | TxnKind::PreauthVoid | TxnKind::PreauthCompletion | TxnKind::PreauthCompletionVoid)
    }

    /// Kinds that settle with the bank when approved (PRODUCT.md, reconciliation rules).
    pub fn settles(self) -> bool {
        matches!(self, TxnKind::Purchase | TxnKind::Void | TxnKind::Refund | TxnKind::PreauthCompletion | TxnKind::PreauthCompletionVoid)
    }

    /// Money moves to the merchant (debit) or back to the cardholder (credit).
    pub fn is_credit(self) -> bool {
        matches!(self, TxnKind::Refund)
    }

    /// 中文名, for exports and the portal.
    pub fn zh(self) -> &'static str {
        match self {
            TxnKind::Purchase => "消费",
            TxnKind::Void => "消费撤销",
            TxnKind::Refund => "退货",
            TxnKind::Preauth => "预授权",
            TxnKind::PreauthVoid => "预授权撤销",
            TxnKind::PreauthCompletion => "预授权完成",
            TxnKind::PreauthCompletionVoid => "预授权完成撤销",
            TxnKind::BalanceInquiry => "余额查询",
        }
    }
}

word_enum!(
    Channel, "channel" {
        Card = "card",
        Wechat = "wechat",
        Alipay = "alipay",
        UnionpayQr = "unionpay_qr",
    }
);

impl Channel {
    pub fn is_qr(self) -> bool {
        !matches!(self, Channel::Card)
    }

    pub fn zh(self) -> &'static str {
        match self {
            Channel::Card => "银行卡",
            Channel::Wechat => "微信支付",
            Channel::Alipay => "支付宝",
            Channel::UnionpayQr => "银联二维码",
        }
    }
}

word_enum!(
    /// The derived state of a transaction (a projection of its events).
    TxnStatus, "status" {
        Approved = "approved",
        Declined = "declined",
        Reversed = "reversed",
        Voided = "voided",
        PartiallyRefunded = "partially_refunded",
        Refunded = "refunded",
        Completed = "completed",
    }
);

impl TxnStatus {
    pub fn zh(self) -> &'static str {
        match self {
            TxnStatus::Approved => "成功",
            TxnStatus::Declined => "拒绝",
            TxnStatus::Reversed => "已冲正",
            TxnStatus::Voided => "已撤销",
            TxnStatus::PartiallyRefunded => "部分退货",
            TxnStatus::Refunded => "已退货",
            TxnStatus::Completed => "已完成",
        }
    }
}

word_enum!(
    Source, "source" {
        Iso8583 = "iso8583",
        Api = "api",
        Import = "import",
        BatchUpload = "batch_upload",
    }
);

word_enum!(
    MerchantStatus, "status" {
        Active = "active",
        Frozen = "frozen",
        Closed = "closed",
    }
);

word_enum!(
    Role, "role" {
        MerchantAdmin = "merchant_admin",
        MerchantStaff = "merchant_staff",
        BankOperator = "bank_operator",
        Auditor = "auditor",
        Admin = "admin",
    }
);

impl Role {
    /// Merchant roles are scoped to one merchant; bank roles see all.
    pub fn is_merchant(self) -> bool {
        matches!(self, Role::MerchantAdmin | Role::MerchantStaff)
    }
}

/// Field 39, with its meaning (ISO8583-CUPS.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode([u8; 2]);

impl ResponseCode {
    pub const APPROVED: ResponseCode = ResponseCode(*b"00");

    const MEANINGS: &'static [(&'static str, &'static str, &'static str)] = &[
        ("00", "承兑或交易成功", "approved"),
        ("03", "无效商户", "merchant frozen or closed"),
        ("05", "不予承兑", "do not honor"),
        ("06", "其他", "other"),
        ("12", "无效交易", "invalid transaction"),
        ("13", "无效金额", "invalid amount"),
        ("14", "无效卡号", "invalid card number"),
        ("25", "找不到原始交易", "original transaction not found"),
        ("30", "报文格式错误", "format error"),
        ("40", "不支持的交易", "function not supported"),
        ("51", "余额不足", "insufficient funds"),
        ("54", "过期的卡", "expired card"),
        ("55", "密码错", "incorrect PIN"),
        ("58", "不允许终端进行的交易", "transaction not permitted to terminal"),
        ("61", "超出金额限制", "exceeds amount limit"),
        ("64", "原始金额错误", "original amount incorrect"),
        ("77", "请重新签到", "sign on again"),
        ("94", "重复交易", "duplicate transmission"),
        ("96", "系统故障", "system malfunction"),
        ("97", "终端未登记", "terminal not registered"),
        ("98", "未收到应答", "no reply received"),
        ("A0", "MAC校验错", "MAC verification failed"),
    ];

    /// Two characters, digits or upper-case letters.
    pub fn parse(s: &str) -> Result<ResponseCode, ParseEnumError> {
        let b = s.as_bytes();
        if b.len() == 2 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
            Ok(ResponseCode([b[0], b[1]]))
        } else {
            Err(ParseEnumError { what: "response_code", allowed: "two digits or capital letters".into(), got: s.to_owned() })
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("validated ASCII")
    }

    pub fn is_approved(self) -> bool {
        self == Self::APPROVED
    }

    /// (zh, en) meaning; unknown codes say so rather than guess.
    pub fn meaning(self) -> (&'static str, &'static str) {
        Self::MEANINGS
            .iter()
            .find(|(c, _, _)| *c == self.as_str())
            .map(|(_, zh, en)| (*zh, *en))
            .unwrap_or(("未知应答码", "unknown response code"))
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A later event that bears on an original transaction's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Related {
    /// The original itself was reversed (0400 / `reversal: true`).
    Reversed,
    /// An approved void (or pre-auth void / completion void) that has not itself been reversed.
    Voided,
    /// An approved refund that has not been reversed.
    Refunded(Amount),
    /// An approved pre-auth completion that is neither voided nor reversed.
    Completed,
}

/// The current status of a transaction, derived from its own outcome and the events that name
/// it as original. Pure, so `verify` and the store compute it the same way.
pub fn project_status(kind: TxnKind, approved: bool, amount: Amount, related: &[Related]) -> TxnStatus {
    if !approved {
        return TxnStatus::Declined;
    }
    if related.contains(&Related::Reversed) {
        return TxnStatus::Reversed;
    }
    if related.contains(&Related::Voided) {
        return TxnStatus::Voided;
    }
    if kind == TxnKind::Preauth && related.contains(&Related::Completed) {
        return TxnStatus::Completed;
    }
    let refunded: i64 = related.iter().map(|r| if let Related::Refunded(a) = r { a.fen() } else { 0 }).sum();
    if refunded > 0 {
        return if refunded >= amount.fen() { TxnStatus::Refunded } else { TxnStatus::PartiallyRefunded };
    }
    TxnStatus::Approved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fen(n: i64) -> Amount {
        Amount::from_fen(n).unwrap()
    }

    #[test]
    fn status_projection() {
        use Related::*;
        let p = TxnKind::Purchase;
        assert_eq!(project_status(p, false, fen(100), &[]), TxnStatus::Declined);
        assert_eq!(project_status(p, true, fen(100), &[]), TxnStatus::Approved);
        assert_eq!(project_status(p, true, fen(100), &[Voided]), TxnStatus::Voided);
        assert_eq!(project_status(p, true, fen(100), &[Refunded(fen(30))]), TxnStatus::PartiallyRefunded);
        assert_eq!(project_status(p, true, fen(100), &[Refunded(fen(30)), Refunded(fen(70))]), TxnStatus::Refunded);
        assert_eq!(project_status(p, true, fen(100), &[Refunded(fen(30)), Reversed]), TxnStatus::Reversed);
        assert_eq!(project_status(TxnKind::Preauth, true, fen(100), &[Completed]), TxnStatus::Completed);
    }

    #[test]
    fn words_round_trip_and_name_the_choices() {
        for k in TxnKind::ALL {
            assert_eq!(TxnKind::parse(k.as_str()).unwrap(), *k);
        }
        let e = Channel::parse("cash").unwrap_err();
        assert_eq!(e.to_string(), "channel must be one of card, wechat, alipay, unionpay_qr, got \"cash\"");
        assert_eq!(ResponseCode::parse("51").unwrap().meaning().1, "insufficient funds");
        assert!(ResponseCode::parse("5").is_err());
    }
}
