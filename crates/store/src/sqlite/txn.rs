//! Transaction records: ingest, bulk import, queries, verify.

use domain::{CardKey, MerchantId, SettlementDate, Source};

use super::SqliteStore;
use crate::error::{BulkError, IngestError, StoreError};
use crate::model::*;
use crate::repo::TxnRepo;

fn pending(what: &'static str) -> StoreError {
    StoreError::Invalid { what, reason: "not available yet".into() }
}

impl TxnRepo for SqliteStore {
    fn ingest(&self, _batch: Vec<NewTxn>, _opts: IngestOptions) -> Result<Vec<IngestResult>, IngestError> {
        Err(pending("ingest").into())
    }

    fn bulk_ingest(
        &self,
        _lines: &mut dyn Iterator<Item = BulkLine>,
        _key: &CardKey,
        _source: Source,
        _opts: BulkOptions,
        _progress: &mut dyn FnMut(BulkProgress),
    ) -> Result<BulkReport, BulkError> {
        Err(pending("bulk_ingest").into())
    }

    fn list_txns(&self, _q: &TxnQuery) -> Result<TxnPage, StoreError> {
        Err(pending("list_txns"))
    }

    fn summary(&self, _q: &TxnQuery) -> Result<Vec<StatusSummary>, StoreError> {
        Err(pending("summary"))
    }

    fn get_txn(&self, _id: &TxnId, _scope: &Scope) -> Result<Option<TxnDetail>, StoreError> {
        Err(pending("get_txn"))
    }

    fn settlements(
        &self,
        _scope: &Scope,
        _merchant_id: Option<&MerchantId>,
        _from: SettlementDate,
        _to: SettlementDate,
    ) -> Result<Vec<SettlementDay>, StoreError> {
        Err(pending("settlements"))
    }

    fn export_txns(
        &self,
        _q: &TxnQuery,
        _rows_max: u64,
        _on_row: &mut dyn FnMut(&TxnRow) -> std::io::Result<()>,
    ) -> Result<ExportOutcome, StoreError> {
        Err(pending("export_txns"))
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        Err(pending("verify"))
    }
}
