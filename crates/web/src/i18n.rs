//! The portal's words in Chinese (default) and English, compiled in. Templates read them as
//! `t.key`; enum values (kinds, statuses, channels, roles) are looked up as `kind_purchase`,
//! `status_reversed`, … so a new variant without a translation fails the table test.

use std::sync::OnceLock;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

pub const LANG_COOKIE: &str = "lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The remembered choice; Chinese unless the cookie says `en`.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        match crate::cookie(headers, LANG_COOKIE) {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

/// (key, zh, en)
pub const MESSAGES: &[(&str, &str, &str)] = &[
    ("brand", "POS 交易查询", "POS Transactions"),
    ("colon", "：", ": "),
    ("main_nav", "主导航", "Main navigation"),
    ("quick_ranges_label", "快捷时间范围", "Quick ranges"),
    ("pagination", "翻页", "Pagination"),
    (
        "chart_label",
        "每日净额柱状图",
        "Bar chart of daily net volume",
    ),
    (
        "zone_note",
        "时间为商户所在时区",
        "Times are in the merchant's zone",
    ),
    ("brand_bank", "收单银行控制台", "Acquirer console"),
    ("switch_lang", "English", "中文"),
    ("skip_to_main", "跳到正文", "Skip to content"),
    ("nav_dashboard", "概览", "Dashboard"),
    ("nav_transactions", "交易明细", "Transactions"),
    ("nav_settlements", "结算", "Settlements"),
    ("nav_diagnose", "找不到交易？", "Can't find a transaction?"),
    ("nav_merchants", "商户管理", "Merchants"),
    ("logout", "退出", "Sign out"),
    ("signed_in_as", "当前用户", "Signed in as"),
    // login
    ("login_title", "登录", "Sign in"),
    ("username", "用户名", "Username"),
    ("password", "密码", "Password"),
    ("login_button", "登录", "Sign in"),
    (
        "login_failed",
        "用户名或密码错误。",
        "Wrong username or password.",
    ),
    (
        "login_attempts_left",
        "还可尝试 {n} 次，之后将锁定 1 分钟。",
        "{n} attempt(s) left before a 1-minute lockout.",
    ),
    (
        "login_locked",
        "登录失败次数过多，请 {n} 秒后再试。",
        "Too many failed sign-ins. Try again in {n} seconds.",
    ),
    (
        "login_closed",
        "该商户账户已关闭，无法登录；请联系收单银行客户经理。",
        "This merchant account is closed; contact your acquiring bank's account manager.",
    ),
    (
        "form_expired",
        "表单已过期，请刷新页面后重试。",
        "The form has expired; reload the page and try again.",
    ),
    // dashboard
    ("dashboard_title", "概览", "Dashboard"),
    ("today", "今天", "Today"),
    ("yesterday", "昨天", "Yesterday"),
    ("last_7_days", "近7天", "Last 7 days"),
    ("this_month", "本月", "This month"),
    ("txn_count", "笔数", "Count"),
    ("approved_amount", "成功交易金额", "Approved amount"),
    ("all_records", "全部记录", "All records"),
    (
        "daily_volume",
        "每日净额（按结算日，近14天）",
        "Daily net volume (by settlement date, last 14 days)",
    ),
    (
        "daily_volume_empty",
        "近14天没有结算数据。",
        "No settlement data in the last 14 days.",
    ),
    ("account_status", "账户状态", "Account status"),
    ("merchant_id", "商户号", "Merchant ID"),
    ("merchant_name", "商户名称", "Merchant name"),
    ("timezone", "时区", "Time zone"),
    ("day_cutoff", "日切时间", "Day cut-off"),
    ("terminals", "终端", "Terminals"),
    ("terminal_sync", "终端同步状态", "Terminal sync"),
    ("terminal_id", "终端号", "Terminal ID"),
    ("open_batch", "当前批次", "Open batch"),
    ("last_seen", "最近联机", "Last contact"),
    ("last_settlement", "最近结算", "Last settlement"),
    ("never", "从未", "never"),
    ("view_details", "查看明细", "View details"),
    ("notices", "提醒", "Notices"),
    (
        "no_role_pages",
        "此角色在门户中暂无页面。",
        "This role has no portal pages yet.",
    ),
    // account banner
    (
        "banner_frozen",
        "您的商户账户已被冻结",
        "Your merchant account is frozen",
    ),
    (
        "banner_closed",
        "您的商户账户已关闭",
        "Your merchant account is closed",
    ),
    ("reason", "原因", "Reason"),
    ("since", "起始时间", "Since"),
    // transactions
    ("txns_title", "交易明细", "Transactions"),
    ("quick_range", "快捷时间", "Quick range"),
    ("basis", "时间口径", "Time basis"),
    ("basis_txn_time", "交易时间", "Transaction time"),
    ("basis_settlement_date", "结算日期", "Settlement date"),
    ("from_date", "开始日期", "From"),
    ("to_date", "结束日期", "To"),
    ("more_filters", "更多筛选", "More filters"),
    ("kinds", "交易类型", "Kinds"),
    ("statuses", "交易状态", "Statuses"),
    ("channels", "支付渠道", "Channels"),
    ("card_last4", "卡号后四位", "Card last 4"),
    ("rrn", "参考号 (RRN)", "RRN"),
    ("stan", "流水号 (STAN)", "STAN"),
    ("auth_code", "授权码", "Auth code"),
    ("amount_min", "最低金额（元）", "Min amount (yuan)"),
    ("amount_max", "最高金额（元）", "Max amount (yuan)"),
    ("search", "查询", "Search"),
    ("reset", "重置", "Reset"),
    ("export_csv", "导出 CSV", "Export CSV"),
    ("export_xlsx", "导出 Excel", "Export Excel"),
    ("exclusive", "不含结束时刻", "end excluded"),
    ("searched_range", "查询范围", "Searched range"),
    ("time", "交易时间", "Time"),
    ("settlement_date", "结算日期", "Settlement date"),
    ("kind", "类型", "Kind"),
    ("status", "状态", "Status"),
    ("channel", "渠道", "Channel"),
    ("card", "卡号", "Card"),
    ("amount", "金额", "Amount"),
    ("details", "详情", "Details"),
    (
        "no_results",
        "没有符合条件的交易。",
        "No transactions match.",
    ),
    ("hints", "可能的原因", "Possible reasons"),
    ("next_page", "下一页", "Next page"),
    ("first_page", "回到第一页", "First page"),
    ("page_n", "第 {n} 页", "Page {n}"),
    ("total", "合计", "Total"),
    ("query_error", "查询条件有误", "The query is not valid"),
    (
        "amount_invalid",
        "金额须为元，最多两位小数，例如 12.34",
        "Amounts are in yuan with at most two decimals, e.g. 12.34",
    ),
    // detail
    ("detail_title", "交易详情", "Transaction details"),
    ("back_to_list", "返回交易明细", "Back to transactions"),
    ("txn_id", "交易编号", "Transaction ID"),
    ("batch_no", "批次号", "Batch"),
    ("response", "应答", "Response"),
    ("source", "来源", "Source"),
    ("external_ref", "渠道订单号", "Channel order no."),
    ("original", "原交易", "Original transaction"),
    ("history", "事件记录", "Event history"),
    ("no_history", "没有后续事件。", "No later events."),
    ("relation", "关系", "Relation"),
    ("rel_reversed_by", "冲正", "Reversed by"),
    ("rel_voided_by", "撤销", "Voided by"),
    ("rel_refunded_by", "退货", "Refunded by"),
    ("rel_completed_by", "完成", "Completed by"),
    ("rel_related", "相关", "Related"),
    ("reversal", "冲正", "reversal"),
    // settlements
    ("settlements_title", "结算汇总", "Settlements"),
    ("gross", "交易额", "Gross"),
    ("refunds", "退货额", "Refunds"),
    ("net", "净额", "Net"),
    ("records", "记录数", "Records"),
    ("declined_count", "失败", "Declined"),
    ("reversed_count", "冲正", "Reversed"),
    ("voided_count", "撤销", "Voided"),
    (
        "no_settlements",
        "该日期范围内没有结算数据。",
        "No settlement data in this range.",
    ),
    // diagnose
    (
        "diagnose_title",
        "找不到交易？",
        "Can't find a transaction?",
    ),
    (
        "diagnose_intro",
        "告诉我们您要找的交易，系统会检查可能的原因。",
        "Tell us about the transaction you are looking for; we will check the likely causes.",
    ),
    ("expected_date", "交易日期", "Date"),
    (
        "expected_time",
        "大约时间（可选）",
        "Approximate time (optional)",
    ),
    ("expected_amount", "金额（元）", "Amount (yuan)"),
    ("diagnose_button", "开始检查", "Check"),
    ("findings", "检查结果", "Findings"),
    ("next_step", "建议", "Next step"),
    ("evidence", "依据", "Evidence"),
    ("checked", "已检查", "Checked"),
    ("related_txns", "相关交易", "Related transactions"),
    (
        "diagnose_need_something",
        "请至少填写一项：日期、金额、卡号后四位、参考号、流水号或授权码。",
        "Fill in at least one of: date, amount, card last 4, RRN, STAN or auth code.",
    ),
    // bank
    ("merchants_title", "商户管理", "Merchants"),
    (
        "search_merchants",
        "按商户号或名称搜索",
        "Search by merchant ID or name",
    ),
    (
        "no_merchants",
        "没有符合条件的商户。",
        "No merchants match.",
    ),
    ("status_history", "状态变更记录", "Status history"),
    ("change_status", "变更状态", "Change status"),
    ("new_status", "新状态", "New status"),
    (
        "reason_required",
        "请填写原因（1 至 500 字）。",
        "Give a reason (1 to 500 characters).",
    ),
    ("status_changed", "状态已变更。", "Status changed."),
    ("actor", "操作人", "By"),
    ("effective_at", "生效时间", "Effective"),
    ("save", "保存", "Save"),
    (
        "read_only_role",
        "审计员只能查看，不能修改。",
        "Auditors can view but not change.",
    ),
    ("no_terminals", "没有终端。", "No terminals."),
    // errors
    ("not_found_title", "页面不存在", "Not found"),
    (
        "not_found_text",
        "您要找的页面或交易不存在，或您无权查看。",
        "The page or transaction does not exist, or you may not see it.",
    ),
    ("forbidden_title", "无权访问", "Not allowed"),
    (
        "forbidden_text",
        "您的角色不能访问此页面。",
        "Your role cannot open this page.",
    ),
    ("error_title", "出错了", "Something went wrong"),
    (
        "error_text",
        "请稍后重试；如果问题持续，请联系收单银行。",
        "Please try again later; if it persists, contact your acquiring bank.",
    ),
    ("back_home", "返回首页", "Back to the start page"),
    // enums
    ("kind_purchase", "消费", "Purchase"),
    ("kind_void", "消费撤销", "Void"),
    ("kind_refund", "退货", "Refund"),
    ("kind_preauth", "预授权", "Pre-auth"),
    ("kind_preauth_void", "预授权撤销", "Pre-auth void"),
    (
        "kind_preauth_completion",
        "预授权完成",
        "Pre-auth completion",
    ),
    (
        "kind_preauth_completion_void",
        "预授权完成撤销",
        "Completion void",
    ),
    ("kind_balance_inquiry", "余额查询", "Balance inquiry"),
    ("status_approved", "成功", "Approved"),
    ("status_declined", "失败", "Declined"),
    ("status_reversed", "已冲正", "Reversed"),
    ("status_voided", "已撤销", "Voided"),
    (
        "status_partially_refunded",
        "部分退货",
        "Partially refunded",
    ),
    ("status_refunded", "已退货", "Refunded"),
    ("status_completed", "已完成", "Completed"),
    ("channel_card", "银行卡", "Card"),
    ("channel_wechat", "微信支付", "WeChat Pay"),
    ("channel_alipay", "支付宝", "Alipay"),
    ("channel_unionpay_qr", "银联二维码", "UnionPay QR"),
    ("source_iso8583", "POS 终端", "POS terminal"),
    ("source_api", "接口上送", "API"),
    ("source_import", "文件导入", "File import"),
    ("source_batch_upload", "批上送", "Batch upload"),
    ("mstatus_active", "正常", "Active"),
    ("mstatus_frozen", "已冻结", "Frozen"),
    ("mstatus_closed", "已关闭", "Closed"),
    ("tstatus_active", "启用", "Active"),
    ("tstatus_disabled", "停用", "Disabled"),
    ("role_merchant_admin", "商户管理员", "Merchant admin"),
    ("role_merchant_staff", "商户员工", "Merchant staff"),
    ("role_bank_operator", "银行操作员", "Bank operator"),
    ("role_auditor", "审计员", "Auditor"),
    ("role_admin", "系统管理员", "Administrator"),
    ("nav_tickets", "工单", "Tickets"),
    ("nav_announcements", "公告", "Announcements"),
    ("nav_clearing", "清算文件", "Clearing files"),
    ("nav_reconciliation", "对账", "Reconciliation"),
    ("nav_audit", "审计日志", "Audit log"),
    ("nav_users", "员工账号", "Staff users"),
    ("affects_query", "查询", "queries"),
    ("affects_capture", "交易受理", "capture"),
    ("affects_settlement", "结算", "settlement"),
    ("list_sep", "、", ", "),
    ("maintenance", "系统维护", "Maintenance"),
    ("until_further_notice", "另行通知", "until further notice"),
    ("affects", "影响", "Affects"),
    ("ticket_offer", "还是找不到？把这个问题和上面的排查结果一起提交给银行，银行处理后会在工单里答复。", "Still missing? Send this question and the findings above to the bank; the answer will appear on the ticket."),
    ("open_ticket", "提交工单", "Open a ticket"),
    ("ticket_subject", "找不到交易", "Missing transaction"),
    ("tickets_title", "工单", "Tickets"),
    ("tickets_intro", "找不到交易时，可在“找不到交易？”页面一键提交工单。", "Open a ticket in one click from the diagnosis page when a transaction is missing."),
    ("ticket_tabs", "工单状态", "Ticket status"),
    ("subject", "主题", "Subject"),
    ("assignee", "处理人", "Assignee"),
    ("updated_at", "更新时间", "Updated"),
    ("no_tickets", "没有工单。", "No tickets."),
    ("tkstatus_all", "全部", "All"),
    ("tkstatus_open", "待处理", "Open"),
    ("tkstatus_assigned", "处理中", "Assigned"),
    ("tkstatus_resolved", "已解决", "Resolved"),
    ("ticket", "工单", "Ticket"),
    ("opened_by", "提交人", "Opened by"),
    ("created_at", "提交时间", "Opened"),
    ("bank_answer", "银行答复", "The bank's answer"),
    ("found_transaction", "找到的交易", "Transaction found"),
    ("ticket_waiting", "银行正在处理，答复会显示在这里。", "The bank is working on it; the answer will appear here."),
    ("attached_diagnosis", "附带的排查结果", "Diagnosis attached"),
    ("ticket_history", "处理记录", "Steps"),
    ("work_ticket", "处理工单", "Work the ticket"),
    ("assign", "指派", "Assign"),
    ("comment", "备注", "Comment"),
    ("add_comment", "添加备注", "Add comment"),
    ("explanation", "答复说明", "Explanation"),
    ("found_transaction_id", "找到的交易编号（可选）", "Transaction id found (optional)"),
    ("resolve", "解决并答复", "Resolve and answer"),
    ("expected_card_last4", "卡号后四位", "Card last 4"),
    ("expected_terminal_id", "终端号", "Terminal"),
    ("expected_rrn", "参考号", "RRN"),
    ("expected_stan", "流水号", "STAN"),
    ("expected_auth_code", "授权码", "Auth code"),
    ("the_bank", "银行", "the bank"),
    ("tkaction_open", "提交", "Opened"),
    ("tkaction_assign", "已受理", "Taken up"),
    ("tkaction_comment", "备注", "Comment"),
    ("tkaction_resolve", "已解决", "Resolved"),
    ("ticket_done_opened", "工单已提交。", "The ticket is open."),
    ("ticket_done_assign", "已指派。", "Assigned."),
    ("ticket_done_comment", "备注已添加。", "Comment added."),
    ("ticket_done_resolve", "工单已解决，商户可看到答复。", "Resolved; the merchant sees the answer."),
    ("resolve_needs_something", "请填写答复说明或找到的交易编号。", "Write an explanation or give the transaction id found."),
    ("refused", "未能保存", "Not saved"),
    ("announcements_title", "公告", "Announcements"),
    ("title", "标题", "Title"),
    ("state", "状态", "State"),
    ("window", "时间", "Window"),
    ("audience", "对象", "For"),
    ("actions", "操作", "Actions"),
    ("edit", "编辑", "Edit"),
    ("end_now", "立即结束", "End now"),
    ("no_announcements", "还没有公告。", "No announcements yet."),
    ("edit_announcement", "编辑公告", "Edit announcement"),
    ("new_announcement", "发布公告", "New announcement"),
    ("title_zh", "标题（中文）", "Title (Chinese)"),
    ("title_en", "标题（英文）", "Title (English)"),
    ("body_zh", "正文（中文）", "Text (Chinese)"),
    ("body_en", "正文（英文）", "Text (English)"),
    ("starts_at", "开始时间", "Starts"),
    ("ends_at", "结束时间", "Ends"),
    ("only_merchant", "仅限商户号（留空为全部商户）", "Only merchant id (empty: all merchants)"),
    ("maintenance_affects", "维护影响（勾选即为维护窗口）", "Maintenance affects (any ticked makes it a maintenance window)"),
    ("announcement_help", "开始时间留空为立即生效；结束时间留空为另行通知。", "An empty start means now; an empty end means until further notice."),
    ("cancel", "取消", "Cancel"),
    ("all_merchants", "全部商户", "All merchants"),
    ("annstate_active", "生效中", "Active"),
    ("annstate_upcoming", "未开始", "Scheduled"),
    ("annstate_ended", "已结束", "Ended"),
    ("announcement_saved", "公告已保存。", "Announcement saved."),
    ("announcement_ended", "公告已结束。", "Announcement ended."),
    ("time_invalid", "时间格式应为 YYYY-MM-DD HH:MM。", "Times are YYYY-MM-DD HH:MM."),
    ("clearing_title", "清算文件", "Clearing files"),
    ("bad_rows", "有问题的行", "Bad rows"),
    ("line", "行", "Line"),
    ("column", "列", "Column"),
    ("value", "值", "Value"),
    ("why", "原因", "Why"),
    ("more_bad_rows", "另有更多问题行未列出：", "More bad rows not listed:"),
    ("upload_file", "上传清算文件", "Upload a clearing file"),
    ("clearing_file", "文件", "File"),
    ("profile", "文件格式", "Profile"),
    ("file_date", "清算日期（文件无日期列时）", "Settlement date (when the file has no date column)"),
    ("allow_partial", "导入正确的行，跳过有问题的行", "Import the good rows, skip the bad ones"),
    ("upload", "上传", "Upload"),
    ("imported_files", "已导入的文件", "Imported files"),
    ("file_name", "文件名", "File name"),
    ("rows", "行数", "Rows"),
    ("imported_at", "导入时间", "Imported"),
    ("superseded", "已被替代", "superseded"),
    ("no_files", "还没有导入文件。", "No files imported yet."),
    ("upload_choose_file", "请选择要上传的文件。", "Choose a file to upload."),
    ("upload_done", "已导入 {name}：{rows} 行，跳过 {bad} 行。", "Imported {name}: {rows} rows, {bad} skipped."),
    ("runs_title", "对账", "Reconciliation"),
    ("start_run", "开始对账", "Start a run"),
    ("outcomes", "结果", "Outcomes"),
    ("pending_channels", "待清算渠道", "Channels pending"),
    ("started_at", "开始时间", "Started"),
    ("run", "对账批次", "Run"),
    ("no_runs", "还没有对账记录。", "No runs yet."),
    ("platform_records", "平台记录", "Platform records"),
    ("clearing_rows", "清算行", "Clearing rows"),
    ("all", "全部", "All"),
    ("outcome", "结果", "Outcome"),
    ("batch_stan", "批次/流水号", "Batch/STAN"),
    ("platform_amount", "平台金额", "Platform amount"),
    ("clearing_amount", "清算金额", "Clearing amount"),
    ("clearing_line", "文件:行", "File:line"),
    ("no_items", "没有记录。", "No items."),
    ("outcome_matched", "一致", "Matched"),
    ("outcome_amount_mismatch", "金额不符", "Amount mismatch"),
    ("outcome_missing_in_clearing", "清算缺失", "Missing in clearing"),
    ("outcome_missing_in_platform", "平台缺失", "Missing in platform"),
    ("outcome_status_mismatch", "状态不符", "Status mismatch"),
    ("outcome_duplicate_in_clearing", "清算重复", "Duplicate in clearing"),
    ("outcome_date_shift", "日期偏移", "Date shift"),
    ("audit_title", "审计日志", "Audit log"),
    ("action", "操作", "Action"),
    ("target", "对象", "Target"),
    ("detail", "详情", "Detail"),
    ("newest", "最新", "Newest"),
    ("older", "更早", "Older"),
    ("users_title", "员工账号", "Staff users"),
    ("role", "角色", "Role"),
    ("all_terminals", "全部终端", "All terminals"),
    ("user_disabled_word", "已停用", "Disabled"),
    ("user_active_word", "正常", "Active"),
    ("disable", "停用", "Disable"),
    ("new_user", "新建用户", "New user"),
    ("new_staff", "新建员工账号", "New staff user"),
    ("initial_password", "初始密码（至少 8 位）", "Initial password (8+ characters)"),
    ("terminals_list", "终端（逗号分隔）", "Terminals (comma-separated)"),
    ("staff_terminals", "可查看的终端", "Terminals this user may see"),
    ("create_user", "创建", "Create"),
    ("user_created", "账号已创建。", "User created."),
    ("user_disabled", "账号已停用，已登出。", "User disabled and signed out."),
];

fn table(lang: Lang) -> &'static Map<String, Value> {
    static ZH: OnceLock<Map<String, Value>> = OnceLock::new();
    static EN: OnceLock<Map<String, Value>> = OnceLock::new();
    let build = |en: bool| {
        MESSAGES
            .iter()
            .map(|(k, zh, e)| ((*k).to_owned(), Value::from(if en { *e } else { *zh })))
            .collect()
    };
    match lang {
        Lang::Zh => ZH.get_or_init(|| build(false)),
        Lang::En => EN.get_or_init(|| build(true)),
    }
}

/// The whole table for templates.
pub fn messages(lang: Lang) -> Value {
    Value::Object(table(lang).clone())
}

/// One message; a missing key is a programmer error and shows the key itself (the table test
/// keeps that from shipping).
pub fn t(lang: Lang, key: &str) -> String {
    table(lang)
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| key.to_owned())
}

/// A message with `{n}` filled in.
pub fn t_n(lang: Lang, key: &str, n: impl std::fmt::Display) -> String {
    t(lang, key).replace("{n}", &n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Channel, MerchantStatus, Role, TxnKind, TxnStatus};

    #[test]
    fn every_key_is_unique_and_translated() {
        let mut seen = std::collections::HashSet::new();
        for (k, zh, en) in MESSAGES {
            assert!(seen.insert(k), "duplicate key {k}");
            assert!(!zh.is_empty() && !en.is_empty(), "{k} lacks a translation");
        }
    }

    #[test]
    fn every_enum_word_has_a_label() {
        let mut keys: Vec<String> = Vec::new();
        keys.extend(TxnKind::ALL.iter().map(|v| format!("kind_{v}")));
        keys.extend(TxnStatus::ALL.iter().map(|v| format!("status_{v}")));
        keys.extend(Channel::ALL.iter().map(|v| format!("channel_{v}")));
        keys.extend(MerchantStatus::ALL.iter().map(|v| format!("mstatus_{v}")));
        keys.extend(Role::ALL.iter().map(|v| format!("role_{v}")));
        keys.extend(domain::Source::ALL.iter().map(|v| format!("source_{v}")));
        for k in keys {
            assert_ne!(t(Lang::Zh, &k), k, "no label for {k}");
        }
    }
}
