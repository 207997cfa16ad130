//! Spec section 6: working keys under the terminal master key (3DES-ECB, double length), key
//! check values, and the retail MAC (ISO 9797-1 algorithm 3, padding method 1) over the bytes
//! from the MTI through the last field before 64. DES comes from RustCrypto's `des`.

use std::fmt;

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2};
use thiserror::Error;

use crate::message::Message;
use crate::subfields::WorkingKeys;

/// A double-length DES key (TMK, PIN key or MAC key). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key16([u8; 16]);

/// The terminal master key.
pub type TerminalMasterKey = Key16;
/// The MAC working key (MAK).
pub type MacKey = Key16;
/// The PIN working key (PIK).
pub type PinKey = Key16;

impl Key16 {
    pub const fn new(bytes: [u8; 16]) -> Key16 {
        Key16(bytes)
    }

    /// From 32 hex digits.
    pub fn from_hex(s: &str) -> Option<Key16> {
        let v = hex::decode(s).ok()?;
        Some(Key16(v.try_into().ok()?))
    }

    /// The clear key bytes: only for storing under encryption or for the cipher.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// First 4 bytes of 3DES-encrypting 8 zero bytes under this key.
    pub fn check_value(&self) -> [u8; 4] {
        let mut block = [0u8; 8];
        self.tdes()
            .encrypt_block(GenericArray::from_mut_slice(&mut block));
        [block[0], block[1], block[2], block[3]]
    }

    fn tdes(&self) -> TdesEde2 {
        TdesEde2::new(GenericArray::from_slice(&self.0))
    }

    /// 3DES-ECB encryption of another 16-byte key under this one.
    pub fn encrypt_key(&self, clear: &Key16) -> [u8; 16] {
        let c = self.tdes();
        let mut out = clear.0;
        for block in out.chunks_exact_mut(8) {
            c.encrypt_block(GenericArray::from_mut_slice(block));
        }
        out
    }

    /// 3DES-ECB decryption of a 16-byte key encrypted under this one.
    pub fn decrypt_key(&self, encrypted: &[u8; 16]) -> Key16 {
        let c = self.tdes();
        let mut out = *encrypted;
        for block in out.chunks_exact_mut(8) {
            c.decrypt_block(GenericArray::from_mut_slice(block));
        }
        Key16(out)
    }
}

impl fmt::Debug for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key16(kcv {})", hex::encode_upper(self.check_value()))
    }
}

/// Key handling and MAC failures.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MacError {
    #[error("field 64 is missing")]
    Missing,
    #[error("field 64 does not match the MAC computed over the message")]
    Mismatch,
    #[error("check value of the {0} key does not match after decryption under the TMK")]
    CheckValue(&'static str),
}

impl WorkingKeys {
    /// Field 62 for a sign-on reply: both clear keys encrypted under the TMK, with check values.
    pub fn issue(tmk: &TerminalMasterKey, pin_key: &PinKey, mac_key: &MacKey) -> WorkingKeys {
        WorkingKeys {
            pin_key_encrypted: tmk.encrypt_key(pin_key),
            pin_key_check: pin_key.check_value(),
            mac_key_encrypted: tmk.encrypt_key(mac_key),
            mac_key_check: mac_key.check_value(),
        }
    }

    /// Decrypts both keys under the TMK and verifies their check values (terminal side).
    pub fn open(&self, tmk: &TerminalMasterKey) -> Result<(PinKey, MacKey), MacError> {
        let pik = tmk.decrypt_key(&self.pin_key_encrypted);
        if pik.check_value() != self.pin_key_check {
            return Err(MacError::CheckValue("PIN"));
        }
        let mak = tmk.decrypt_key(&self.mac_key_encrypted);
        if mak.check_value() != self.mac_key_check {
            return Err(MacError::CheckValue("MAC"));
        }
        Ok((pik, mak))
    }
}

/// ISO 9797-1 MAC algorithm 3 with DES (ANSI X9.19 retail MAC), padding method 1: zero bytes
/// up to a multiple of 8, none when the data already is one (empty data: one zero block).
pub fn retail_mac(key: &MacKey, data: &[u8]) -> [u8; 8] {
    let k1 = Des::new(GenericArray::from_slice(&key.0[..8]));
    let k2 = Des::new(GenericArray::from_slice(&key.0[8..]));
    let mut state = [0u8; 8];
    let mut blocks = data.chunks(8).peekable();
    if blocks.peek().is_none() {
        k1.encrypt_block(GenericArray::from_mut_slice(&mut state));
    }
    for chunk in blocks {
        for (s, b) in state.iter_mut().zip(chunk) {
            *s ^= b;
        }
        k1.encrypt_block(GenericArray::from_mut_slice(&mut state));
    }
    k2.decrypt_block(GenericArray::from_mut_slice(&mut state));
    k1.encrypt_block(GenericArray::from_mut_slice(&mut state));
    state
}

/// The bytes the MAC covers: MTI, bitmap (bit 64 set) and every field before 64.
pub fn mac_input(message: &Message) -> Vec<u8> {
    let mut m = message.clone();
    if !m.has(64) {
        // Any 8 bytes: only the bitmap bit matters, the value is cut off below.
        let _ = m.set(64, [0u8; 8]);
    }
    let mut out = Vec::with_capacity(256);
    m.encode_from_mti(&mut out);
    out.truncate(out.len() - 8);
    out
}

/// The MAC of `message` as it would be sent (with bit 64 set).
pub fn compute_mac(message: &Message, key: &MacKey) -> [u8; 8] {
    retail_mac(key, &mac_input(message))
}

/// Sets field 64 to the MAC under `key`.
pub fn sign(message: &mut Message, key: &MacKey) {
    let mac = compute_mac(message, key);
    // 8 bytes always fit field 64.
    let _ = message.set(64, mac);
}

/// Checks field 64 against the MAC computed under `key`. Comparison does not stop early.
pub fn verify(message: &Message, key: &MacKey) -> Result<(), MacError> {
    let got = message.get(64).ok_or(MacError::Missing)?;
    let want = compute_mac(message, key);
    let diff = got
        .iter()
        .zip(want.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 && got.len() == 8 {
        Ok(())
    } else {
        Err(MacError::Mismatch)
    }
}
