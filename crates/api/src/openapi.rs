//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written by hand next to the
//! routes it describes.

use axum::Json;
use serde_json::{json, Value};

fn param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}})
}

fn filters() -> Vec<Value> {
    vec![
        param("from", "RFC 3339 instant or YYYY-MM-DD in the merchant's zone"),
        param("to", "RFC 3339 instant (exclusive) or YYYY-MM-DD (that whole day included)"),
        param("basis", "txn_time (default) or settlement_date"),
        param("merchant_id", "15 characters"),
        param("terminal_id", "8 characters; repeat or comma-separate"),
        param("kind", "purchase|void|refund|preauth|preauth_void|preauth_completion|preauth_completion_void|balance_inquiry"),
        param("status", "approved|declined|reversed|voided|partially_refunded|refunded|completed"),
        param("channel", "card|wechat|alipay|unionpay_qr"),
        param("card_last4", "4 digits"),
        param("rrn", "12 characters"),
        param("stan", "6 digits"),
        param("batch_no", "6 digits"),
        param("auth_code", "6 characters"),
        param("external_ref", "channel order number"),
        param("amount_min", "fen"),
        param("amount_max", "fen"),
    ]
}

pub async fn document() -> Json<Value> {
    let problem = json!({"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut list_params = filters();
    list_params.extend([param("limit", "1..500, default 50"), param("cursor", "next_cursor of the previous page"), param("include", "summary")]);
    let mut export_params = filters();
    export_params.extend([param("format", "csv|xlsx"), param("encoding", "utf-8|gbk (CSV)"), param("lang", "zh|en")]);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "poslens API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "poslens_session"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
            },
            "schemas": {
                "Problem": {"type": "object", "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"}, "code": {"type": "string"}, "param": {"type": "string"},
                    "request_id": {"type": "string"}, "errors": {"type": "array"}}},
                "Finding": finding_schema(),
                "Transaction": {"type": "object", "properties": {
                    "id": {"type": "string"}, "merchant_id": {"type": "string"}, "terminal_id": {"type": ["string", "null"]},
                    "batch_no": {"type": ["string", "null"]}, "stan": {"type": ["string", "null"]}, "rrn": {"type": ["string", "null"]},
                    "auth_code": {"type": ["string", "null"]}, "kind": {"type": "string"}, "channel": {"type": "string"},
                    "card": {"type": ["object", "null"]}, "amount": {"type": "integer", "description": "fen"},
                    "currency": {"type": "string"}, "response_code": {"type": "string"}, "status": {"type": "string"},
                    "txn_time": {"type": "string", "format": "date-time"}, "settlement_date": {"type": "string", "format": "date"},
                    "original_id": {"type": ["string", "null"]}, "source": {"type": "string"}}}
            }
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {
            "/auth/login": {"post": {"summary": "Sign in", "security": [], "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["username", "password"]}}}},
                "responses": {"200": {"description": "token, expires_at, user"}, "401": problem}}},
            "/auth/logout": {"post": {"summary": "Sign out", "responses": {"204": {"description": "signed out"}}}},
            "/auth/me": {"get": {"summary": "The signed-in user", "responses": {"200": {"description": "user"}}}},
            "/transactions": {
                "get": {"summary": "交易明细查询 — list transactions", "parameters": list_params,
                    "responses": {"200": {"description": "{data, has_more, next_cursor, range, warnings, hints?, summary?}"}, "400": problem}},
                "post": {"summary": "Ingest up to 1,000 transactions (API key)", "security": [{"apiKey": []}],
                    "responses": {"201": {"description": "ids"}, "200": {"description": "all duplicates"}, "422": problem}}
            },
            "/transactions/export": {"get": {"summary": "Export a query as CSV or XLSX", "parameters": export_params,
                "responses": {"200": {"description": "file"}, "400": problem}}},
            "/transactions/{id}": {"get": {"summary": "One transaction with its event history",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "transaction + original + events"}, "404": problem}}},
            "/settlements": {"get": {"summary": "Totals per settlement date",
                "parameters": [param("from", "YYYY-MM-DD"), param("to", "YYYY-MM-DD"), param("merchant_id", "15 characters")],
                "responses": {"200": {"description": "per date: counts, gross, refunds, net"}}}},
            "/merchants": {"get": {"summary": "Merchants in scope", "responses": {"200": {"description": "list"}}}},
            "/merchants/{id}": {"get": {"summary": "One merchant with status history", "responses": {"200": {"description": "merchant"}, "404": problem}}},
            "/merchants/{id}/status": {"post": {"summary": "Set merchant status (bank operator)", "responses": {"200": {"description": "merchant"}, "403": problem, "404": problem}}},
            "/diagnose": diagnose_path(),
            "/terminals": {"get": {"summary": "Terminals in scope with sync state", "parameters": [param("merchant_id", "15 characters")],
                "responses": {"200": {"description": "list"}}}}
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.extend(crate::recon::openapi_paths());
        paths.extend(findability_paths());
    }
    Json(doc)
}

/// `POST /diagnose` (kept out of the big literal: `json!` has a recursion limit).
fn diagnose_path() -> Value {
    let problem = json!({"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    json!({"post": {"summary": "为什么查不到这笔交易？ — diagnose a missing transaction",
                "description": "Readers only. Looks only at the caller's own data: another merchant's RRN answers exactly like an unknown one. Bank roles name the merchant (query.merchant_id or expected.merchant_id). It reads clearing-file arrival and the latest reconciliation run of each date in the window; `checked` lists everything looked at.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {
                    "query": {"type": "object", "additionalProperties": false, "description": "the list query that came back empty or short, as GET /transactions takes it",
                        "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "basis": {"type": "string", "enum": ["txn_time", "settlement_date"]},
                            "merchant_id": {"type": "string", "description": "as typed"}, "terminal_id": {"type": ["string", "array"], "description": "as typed"},
                            "kind": {"type": ["string", "array"]}, "status": {"type": ["string", "array"]}, "channel": {"type": ["string", "array"]},
                            "card_last4": {"type": "string"}, "rrn": {"type": "string"}, "stan": {"type": "string"}, "auth_code": {"type": "string"},
                            "amount_min": {"type": "integer", "description": "fen"}, "amount_max": {"type": "integer", "description": "fen"}}},
                    "expected": {"type": "object", "additionalProperties": false, "description": "what the person is looking for",
                        "properties": {"time": {"type": "string", "description": "RFC 3339 instant or YYYY-MM-DD (merchant's zone)"},
                            "amount": {"type": "integer", "description": "fen"}, "card_last4": {"type": "string"},
                            "terminal_id": {"type": "string", "description": "as typed"}, "rrn": {"type": "string"}, "stan": {"type": "string"},
                            "auth_code": {"type": "string"}, "merchant_id": {"type": "string", "description": "as typed"}}}}}}}},
                "responses": {
                    "200": {"description": "findings, most likely cause first, and what was checked", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
                        "checked": {"type": "array", "items": {"type": "object", "properties": {"subject": {"type": "string"}, "note": {"type": "object"}, "available": {"type": "boolean"}}}}}}}}},
                    "400": problem, "403": problem, "404": problem, "415": problem, "422": problem}}})
}

/// One diagnosis finding, as `POST /diagnose`, list `warnings` and `hints` carry it.
fn finding_schema() -> Value {
    json!({"type": "object", "properties": {
                    "code": {"type": "string", "enum": ["OUTSIDE_RANGE", "SETTLEMENT_DATE_SHIFT", "TIMEZONE", "FILTERED_OUT", "DECLINED", "REVERSED", "VOIDED", "REFUNDED",
                        "OTHER_TERMINAL", "TERMINAL_NOT_BOUND", "MERCHANT_ID_MISMATCH", "ACCOUNT_FROZEN", "ACCOUNT_CLOSED", "SYNC_PENDING", "CLEARING_PENDING",
                        "MISSING_AT_BANK", "MAINTENANCE", "RETENTION", "NOT_FOUND"]},
                    "severity": {"type": "string", "enum": ["info", "warning", "critical"]},
                    "message": {"type": "object", "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}},
                    "evidence": {"type": "object"},
                    "next_step": {"type": "object", "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}},
                    "transaction_ids": {"type": "array", "items": {"type": "string"}}}})
}

/// Announcements, tickets, the audit log and terminals' batch-upload discrepancies.
fn findability_paths() -> serde_json::Map<String, Value> {
    let problem = json!({"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let announcement_body = json!({"content": {"application/json": {"schema": {"type": "object", "required": ["title"], "properties": {
        "title": {"type": "object", "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}},
        "body": {"type": "object", "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}},
        "merchant_id": {"type": ["string", "null"], "description": "absent: every merchant"},
        "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": ["string", "null"], "format": "date-time"},
        "maintenance": {"type": "boolean"}, "affects": {"type": "array", "items": {"type": "string", "enum": ["query", "capture", "settlement"]}}}}}}});
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}});
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}});
    let mut m = serde_json::Map::new();
    m.insert("/announcements".into(), json!({
        "get": {"summary": "Announcements: merchants see theirs and everyone's; bank roles all", "parameters": [q("active", "true: only those in force now")],
                "responses": {"200": {"description": "list"}}},
        "post": {"summary": "Post an announcement or maintenance window (bank operator)", "requestBody": announcement_body.clone(),
                 "responses": {"201": {"description": "created"}, "400": problem.clone(), "403": problem.clone()}}}));
    m.insert("/announcements/{id}".into(), json!({"put": {"summary": "Edit (bank operator)", "parameters": [id.clone()], "requestBody": announcement_body,
        "responses": {"200": {"description": "updated"}, "404": problem.clone()}}}));
    m.insert("/announcements/{id}/end".into(), json!({"post": {"summary": "End now; kept for history (bank operator)", "parameters": [id.clone()],
        "responses": {"200": {"description": "ended"}, "404": problem.clone()}}}));
    m.insert("/tickets".into(), json!({
        "get": {"summary": "Missing-transaction tickets: a merchant's own, or the bank's queue", "parameters": [q("status", "open|assigned|resolved"), q("limit", "1..500")],
                "responses": {"200": {"description": "list"}}},
        "post": {"summary": "Open a ticket with the question and its diagnosis (merchant users; Idempotency-Key honoured)",
                 "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string"}}],
                 "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["subject"], "properties": {
                     "subject": {"type": "string"}, "expected": {"type": "object"}, "diagnosis": {"type": "object"}}}}}},
                 "responses": {"201": {"description": "opened"}, "200": {"description": "already open under this key"}, "403": problem.clone()}}}));
    m.insert("/tickets/{id}".into(), json!({"get": {"summary": "A ticket with its steps (foreign: 404)", "parameters": [id.clone()],
        "responses": {"200": {"description": "ticket"}, "404": problem.clone()}}}));
    m.insert("/tickets/{id}/{step}".into(), json!({"post": {"summary": "Bank steps: assign {assignee}, comments {text}, resolve {explanation, transaction_id}",
        "parameters": [id, {"name": "step", "in": "path", "required": true, "schema": {"type": "string", "enum": ["assign", "comments", "resolve"]}}],
        "responses": {"200": {"description": "ticket"}, "403": problem.clone(), "404": problem.clone(), "422": problem.clone()}}}));
    m.insert("/audit".into(), json!({"get": {"summary": "The audit log (auditors)", "parameters": [q("actor", "exact"), q("action", "exact"),
        q("from", "RFC 3339"), q("to", "RFC 3339"), q("before_id", "keyset: next_before_id of the previous page"), q("limit", "1..500")],
        "responses": {"200": {"description": "events, newest first"}, "403": problem.clone()}}}));
    m.insert("/terminals/discrepancies".into(), json!({"get": {"summary": "Items terminals' batch uploads reported that differ from the host", "parameters": [
        q("merchant_id", "15 characters"), q("terminal_id", "8 characters"), q("limit", "1..500")],
        "responses": {"200": {"description": "newest first"}, "404": problem}}}));
    m
}
