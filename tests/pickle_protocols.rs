//! The Python-version reader reads what Python 3 with NumPy writes, at every
//! protocol from 2 to 5, with text keys and with bytes keys (a batch loaded
//! with `encoding='bytes'` and dumped again). Fixtures: tests/fixtures/pickle/,
//! written by its make.py.

use shallow::data::pickle::parse_images;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pickle")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What make.py pickles: 4 images of 3072 bytes, (7 i) mod 256 in C order.
fn expected_pixels() -> Vec<u8> {
    (0..4 * 3072u64).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn every_protocol_from_2_to_5_reads_back_the_same_images() {
    for protocol in 2..=5 {
        for keys in ["bytes", "text"] {
            let name = format!("protocol{protocol}_{keys}_keys.pkl");
            let bytes = fixture(&name);
            assert_eq!(
                bytes[..2],
                [0x80, protocol],
                "{name} is a protocol {protocol} pickle"
            );
            let got = parse_images(&bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(got.shape, [4, 3072], "{name}");
            assert_eq!(got.labels, [3, 1, 4, 1], "{name}");
            assert!(got.pixels == expected_pixels(), "{name}: pixels differ");
        }
    }
}

#[test]
fn a_dict_without_data_names_the_keys_it_has() {
    // Protocol 2, {'images': 1}: EMPTY_DICT, BINUNICODE 'images', BININT1 1, SETITEM, STOP.
    let mut p = vec![0x80, 2, b'}', b'X'];
    p.extend_from_slice(&6u32.to_le_bytes());
    p.extend_from_slice(b"images");
    p.extend_from_slice(&[b'K', 1, b's', b'.']);
    let err = parse_images(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the pickle has no `data` entry (its keys: 'images')"
    );
}

#[test]
fn out_of_band_buffers_are_refused_with_the_fix() {
    let err = parse_images(&[0x80, 5, 0x97, b'.']).unwrap_err();
    assert!(err.to_string().contains("without buffer_callback"), "{err}");
}
