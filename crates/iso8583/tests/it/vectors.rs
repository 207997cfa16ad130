//! Every vector decodes to exactly its fields and encodes back to exactly its bytes.

use iso8583::{Message, Mti};

use crate::support::{all_vectors, fields_of, message_of, text_fields, wire};

#[test]
fn every_vector_decodes_to_its_fields() {
    let vectors = all_vectors();
    assert!(vectors.len() > 50, "only {} vectors", vectors.len());
    for (file, v) in &vectors {
        let name = format!("{file}/{}", v["name"]);
        let w = wire(v);
        let len = usize::from(u16::from_be_bytes([w[0], w[1]]));
        assert_eq!(len, w.len() - 2, "{name}: length prefix");
        let m = Message::decode(&w[2..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            m.mti(),
            Mti::parse(v["mti"].as_str().unwrap()).unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode_upper(m.envelope().to_bytes()),
            v["tpdu_header_hex"].as_str().unwrap().to_uppercase(),
            "{name}"
        );
        assert_eq!(
            format!("{:016X}", m.bitmap()),
            v["bitmap_hex"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(text_fields(&m), fields_of(v), "{name}");
    }
}

#[test]
fn every_vector_encodes_to_its_bytes() {
    for (file, v) in all_vectors() {
        let name = format!("{file}/{}", v["name"]);
        let m = message_of(&v);
        assert_eq!(
            hex::encode_upper(m.to_frame().expect("frame")),
            v["wire_hex"].as_str().unwrap().to_uppercase(),
            "{name}"
        );
    }
}

#[test]
fn subfield_annotations_match_the_views() {
    for (file, v) in all_vectors() {
        let Some(subs) = v.get("subfields").and_then(|s| s.as_object()) else {
            continue;
        };
        let m = message_of(&v);
        let json = iso8583::decode_to_json_value(&m.to_frame().unwrap()).unwrap();
        for (field, expected) in subs {
            if field != "60" && field != "61" {
                continue;
            }
            let n: u64 = field.parse().unwrap();
            let got = json["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["field"] == n)
                .map(|f| f["subfields"].clone())
                .unwrap();
            for (k, want) in expected.as_object().unwrap() {
                let key = if k == "61.reserved" { continue } else { k };
                assert_eq!(&got[key], want, "{file}/{} {key}", v["name"]);
            }
        }
    }
}

#[test]
fn debug_and_description_mask_card_data() {
    let v = crate::support::load("purchase.json");
    let pin_track3 = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "0200_purchase_pin_track3")
        .unwrap()
        .clone();
    let m = message_of(&pin_track3);
    let dbg = format!("{m:?}");
    let json = iso8583::decode_to_json_value(&m.to_frame().unwrap())
        .unwrap()
        .to_string();
    for out in [&dbg, &json] {
        assert!(!out.contains("6228489876541234"), "clear PAN in {out}");
        assert!(!out.contains("D2812201"), "clear track 2 in {out}");
        assert!(
            !out.contains("4AD5BC3B7E6C7DFB"),
            "clear PIN block in {out}"
        );
        assert!(
            out.contains("622848******1234"),
            "masked PAN missing in {out}"
        );
    }
    assert!(json.contains("\"transaction\":\"purchase\""), "{json}");
}
