//! Section 6: check values, working keys under the TMK, retail MAC over MTI..last field.

use iso8583::mac::{compute_mac, mac_input, retail_mac, sign, verify};
use iso8583::{Key16, MacError, Request, WorkingKeys};

use crate::support::{all_vectors, load, message_of};

fn signon_keys() -> serde_json::Value {
    let v = load("signon.json");
    v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "0810_signon_keys")
        .unwrap()
        .clone()
}

fn key(v: &serde_json::Value, k: &str) -> Key16 {
    Key16::from_hex(v["keys"][k].as_str().unwrap()).unwrap()
}

#[test]
fn working_keys_open_under_the_tmk_and_reissue_identically() {
    let v = signon_keys();
    let m = message_of(&v);
    let tmk = key(&v, "tmk_clear_hex");
    let keys = WorkingKeys::parse(m.get(62).unwrap()).unwrap();
    let (pik, mak) = keys.open(&tmk).unwrap();
    assert_eq!(pik, key(&v, "pik_clear_hex"));
    assert_eq!(mak, key(&v, "mak_clear_hex"));
    assert_eq!(
        hex::encode_upper(pik.check_value()),
        v["keys"]["pik_check_hex"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode_upper(mak.check_value()),
        v["keys"]["mak_check_hex"].as_str().unwrap()
    );
    assert_eq!(WorkingKeys::issue(&tmk, &pik, &mak), keys);
    assert_eq!(keys.to_bytes(), m.get(62).unwrap());
    let wrong = Key16::new([0x11; 16]);
    assert!(matches!(keys.open(&wrong), Err(MacError::CheckValue(_))));
    assert!(
        !format!("{mak:?}").contains("C1D0F8FB"),
        "clear key in Debug"
    );
}

#[test]
fn every_maced_vector_verifies() {
    let mut count = 0;
    for (file, v) in all_vectors() {
        let Some(k) = v.get("mac_key_hex").and_then(|k| k.as_str()) else {
            continue;
        };
        let key = Key16::from_hex(k).unwrap();
        let name = format!("{file}/{}", v["name"]);
        let input = hex::decode(v["mac_input_hex"].as_str().unwrap()).unwrap();
        let mac = v["mac_hex"].as_str().unwrap();
        assert_eq!(hex::encode_upper(retail_mac(&key, &input)), mac, "{name}");
        let m = message_of(&v);
        assert_eq!(mac_input(&m), input, "{name}: MAC input");
        verify(&m, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut unsigned = m.clone();
        unsigned.remove(64);
        assert_eq!(verify(&unsigned, &key), Err(MacError::Missing));
        sign(&mut unsigned, &key);
        assert_eq!(unsigned, m, "{name}: sign reproduces 64");
        let mut tampered = m.clone();
        tampered.set(4, "000000002501").unwrap();
        assert_eq!(verify(&tampered, &key), Err(MacError::Mismatch), "{name}");
        count += 1;
    }
    assert_eq!(count, 4);
    // The MAK of mac.json is the sign-on vector's MAK.
    let mac_file = load("mac.json");
    assert_eq!(
        Key16::from_hex(mac_file["vectors"][0]["mac_key_hex"].as_str().unwrap()).unwrap(),
        key(&signon_keys(), "mak_clear_hex")
    );
}

#[test]
fn maced_request_view_keeps_field_64() {
    let v = load("mac.json");
    let m = message_of(&v["vectors"][0]);
    let Request::Financial(f) = Request::from_message(&m).unwrap() else {
        panic!()
    };
    assert!(f.mac.is_some());
    let key = Key16::from_hex(v["vectors"][0]["mac_key_hex"].as_str().unwrap()).unwrap();
    assert_eq!(Some(compute_mac(&m, &key)), f.mac);
}

#[test]
fn padding_method_1() {
    let key = Key16::new(*b"0123456789abcdef");
    // Data already a multiple of 8 gets no padding block; short data is zero-padded.
    assert_eq!(retail_mac(&key, b"abc"), retail_mac(&key, b"abc\0\0\0\0\0"));
    assert_ne!(
        retail_mac(&key, b"abcdefgh"),
        retail_mac(&key, b"abcdefgh\0\0\0\0\0\0\0\0")
    );
    assert_eq!(retail_mac(&key, b""), retail_mac(&key, &[0u8; 8]));
}
