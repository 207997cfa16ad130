//! The installation's card key: 32 random bytes in `<data>/card.key`, mode 0600, made on first
//! use. Losing it means new tokens no longer match old ones; it is never printed.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use domain::CardKey;
use rand::RngCore;

use crate::StoreError;

pub const CARD_KEY_FILE: &str = "card.key";

/// Reads `<data_dir>/card.key`, creating the directory and the key (0600) if absent.
pub fn card_key(data_dir: &Path) -> Result<CardKey, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
    let path = data_dir.join(CARD_KEY_FILE);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(|e| StoreError::io(&path, e))?;
            CardKey::from_bytes(&bytes).map_err(|e| StoreError::CardKey(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| StoreError::io(&path, e))?;
            CardKey::from_bytes(&bytes).map_err(|_| {
                StoreError::CardKey(format!(
                    "{} holds {} bytes, expected 32; restore it from backup (a new key would orphan every card token)",
                    path.display(),
                    bytes.len()
                ))
            })
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}
