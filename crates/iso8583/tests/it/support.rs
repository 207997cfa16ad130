//! Loading the shared vectors (`<repo>/../shared/spec/vectors`, never copied into the repo).

use std::collections::BTreeMap;
use std::path::PathBuf;

use iso8583::{Envelope, Message, Mti};
use serde_json::Value;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/vectors")
}

pub fn load(file: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every vector of every file but malformed.json, with its file name.
pub fn all_vectors() -> Vec<(String, Value)> {
    let mut files: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("vectors dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "malformed.json")
        .collect();
    files.sort();
    assert!(
        files.len() >= 16,
        "expected the shared vector files, found {files:?}"
    );
    let mut out = Vec::new();
    for f in files {
        let v = load(&f);
        for vec in v["vectors"].as_array().expect("vectors array") {
            out.push((f.clone(), vec.clone()));
        }
    }
    out
}

pub fn fields_of(v: &Value) -> BTreeMap<u8, String> {
    v["fields"]
        .as_object()
        .expect("fields")
        .iter()
        .map(|(k, v)| {
            (
                k.parse().expect("field number"),
                v.as_str().expect("str").to_owned(),
            )
        })
        .collect()
}

pub fn wire(v: &Value) -> Vec<u8> {
    hex::decode(v["wire_hex"].as_str().expect("wire_hex")).expect("hex")
}

/// Builds the message a vector describes from its mti, tpdu_header_hex and fields.
pub fn message_of(v: &Value) -> Message {
    let env = Envelope::from_hex(v["tpdu_header_hex"].as_str().expect("tpdu")).expect("envelope");
    let mti = Mti::parse(v["mti"].as_str().expect("mti")).expect("mti");
    let mut m = Message::new(env, mti);
    for (f, val) in fields_of(v) {
        m.set_text(f, &val)
            .unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
    }
    m
}

/// A message's fields in the vectors' convention.
pub fn text_fields(m: &Message) -> BTreeMap<u8, String> {
    m.field_numbers()
        .map(|f| (f, m.get_text(f).expect("present")))
        .collect()
}

/// A random valid value for `field` (logical form), from the field table.
pub fn random_value(rng: &mut impl rand::Rng, field: u8) -> Vec<u8> {
    use iso8583::spec::{field_def, Format, LengthKind};
    let def = field_def(field).expect("dialect field");
    let len = match def.length {
        LengthKind::Fixed(n) => n as usize,
        LengthKind::LlVar(max) | LengthKind::LllVar(max) => rng.gen_range(1..=max as usize),
    };
    match def.format {
        Format::N => (0..len).map(|_| rng.gen_range(b'0'..=b'9')).collect(),
        Format::Z => {
            let mut v: Vec<u8> = (0..len).map(|_| rng.gen_range(b'0'..=b'9')).collect();
            if len > 2 {
                let i = rng.gen_range(1..len);
                v[i] = b'D';
            }
            v
        }
        Format::An | Format::Ans => (0..len).map(|_| rng.gen_range(0x20u8..=0x7e)).collect(),
        Format::B => (0..len).map(|_| rng.gen()).collect(),
    }
}

/// A message with the MTI, envelope and field set of `template` and random valid values.
pub fn random_like(rng: &mut impl rand::Rng, template: &Message) -> Message {
    let mut m = Message::new(template.envelope(), template.mti());
    for f in template.field_numbers() {
        m.set(f, random_value(rng, f)).expect("valid random value");
    }
    m
}
